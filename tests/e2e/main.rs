//! End-to-end tests: the built local server and a real OAuth server, each a process; on the
//! AWS backend also moto, the AWS emulator.

use e2e::{Backend, World};

/// Runs each scenario against both backends: `name::sqlite` and `name::aws`.
macro_rules! on_both_backends {
    ($module:ident: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn sqlite() -> anyhow::Result<()> {
                    $module::$name(World::with(Backend::Sqlite).await?).await
                }

                #[tokio::test]
                async fn aws() -> anyhow::Result<()> {
                    $module::$name(World::with(Backend::Aws).await?).await
                }
            }
        )*
    };
    // Scenarios that make their own World for the backend they are given.
    ($module:ident(backend): $($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn sqlite() -> anyhow::Result<()> {
                    $module::$name(Backend::Sqlite).await
                }

                #[tokio::test]
                async fn aws() -> anyhow::Result<()> {
                    $module::$name(Backend::Aws).await
                }
            }
        )*
    };
}

mod aws_only;
mod bad_input;
mod binding;
mod browser;
mod concurrency;
mod contracts;
mod entered;
mod faults;
mod flow;
mod lambda;
mod lifecycle;
mod openapi;
mod proxy;
mod refresh;
mod strict;
mod template;
mod upkeep;

on_both_backends!(flow:
    a_user_token_from_link_to_deletion,
    reconnecting_keeps_the_token_id_and_replaces_credentials,
    a_bot_token_through_the_connect_page,
    the_operator_registers_providers_without_seeing_secrets_again,
);
on_both_backends!(entered:
    keys_and_basic_credentials_are_entered_and_read_back,
    an_apps_own_token_is_fetched_on_the_connect_page_and_renewed,
);

on_both_backends!(binding:
    a_flow_finishes_only_in_the_browser_that_started_it,
    two_flows_from_one_link_connect_once,
    a_link_requested_in_a_loop_stops_starting_flows,
    the_connect_form_accepts_only_its_own_page,
    a_sign_in_confirmed_by_code_is_stored_once_the_chat_sends_it,
    a_sign_in_confirmed_by_redirect_is_stored_for_the_platforms_user,
);
on_both_backends!(bad_input:
    keys_are_required_and_bots_are_isolated,
    operator_inputs_are_checked,
    a_rejected_integrations_file_changes_nothing,
    link_requests_are_checked,
    browser_pages_refuse_bad_links_and_callbacks,
);
on_both_backends!(concurrency:
    a_callback_is_used_once_even_when_sent_twice_at_once,
    fifty_callers_of_an_expired_token_cause_one_refresh,
);
on_both_backends!(refresh:
    an_expiring_token_is_refreshed_and_stored_before_the_answer,
    a_refresh_refused_for_good_revokes_the_token,
    a_provider_outage_answers_503_and_changes_nothing,
);

/// Against the strict provider: `strict_provider::<scenario>::{sqlite,aws}`.
mod strict_provider {
    use super::*;

    on_both_backends!(strict(backend):
        a_user_connects_with_pkce_and_basic_auth,
        short_lived_tokens_are_refreshed_once_for_twenty_callers,
        delete_revokes_the_grant_at_the_provider,
        a_reused_refresh_token_is_never_sent,
        a_reconnect_revokes_the_replaced_grant_of_another_account_only,
        a_lost_refresh_answer_at_a_rotating_provider_is_reported_as_ours,
        the_job_and_the_proxy_keep_a_rotating_grant_working,
    );
}

on_both_backends!(upkeep(backend):
    a_keep_fresh_token_is_refreshed_without_any_call,
    the_job_and_twenty_callers_share_one_refresh,
    a_grants_end_is_announced_ahead_and_once,
    a_failed_revocation_is_retried_until_it_works_or_gives_up,
);

on_both_backends!(proxy(backend):
    bearer_calls_go_through_and_a_rejected_token_is_refreshed_once,
    rate_limits_are_passed_on_and_safe_calls_retried_within_the_budget,
    paths_that_escape_are_refused_before_anything_is_sent,
    api_keys_and_basic_credentials_are_placed_as_each_provider_expects,
    large_answers_stream_within_the_limit,
);

on_both_backends!(faults:
    a_lost_refresh_answer_is_reported_as_refresh_outcome_unknown,
);
