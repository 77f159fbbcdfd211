use super::*;
use crate::crypto::Sealed;
use crate::domain::ids::{Alias, BotId, ProviderName, TokenId};
use crate::domain::token::Owner;

const POLICY: UpkeepPolicy = UpkeepPolicy {
    warn_ahead: 100,
    retry_base: 10,
    revocation_window: 1000,
};

fn token(provider: &str, expires_at: Option<i64>, upkeep: Upkeep) -> TokenRecord {
    TokenRecord {
        bot_id: BotId::parse("acme").unwrap(),
        token_id: TokenId::generate(),
        alias: Alias::parse("demo").unwrap(),
        provider: ProviderName::parse(provider).unwrap(),
        owner: Owner::Bot,
        status: TokenStatus::Active,
        expires_at,
        sealed: Sealed::from_stored("v1.k.AA.AA".into()),
        version: 1,
        refresh_unsettled: None,
        created_at: 0,
        updated_at: 0,
        upkeep,
        due_at: None,
    }
}

fn renewable(keep_fresh: bool) -> Upkeep {
    Upkeep::renewed(None, "custom_demo", keep_fresh, true, None, 0)
}

#[test]
fn only_keep_fresh_tokens_are_refreshed_before_their_access_token_expires() {
    let kept = token("custom_demo", Some(3600), renewable(true));
    assert_eq!(kept.next_due(0, &POLICY), Some(3600 - REFRESH_MARGIN_SECS));
    assert_eq!(kept.chore(3479, &POLICY), None);
    assert_eq!(kept.chore(3480, &POLICY), Some(Chore::Refresh));
    let left = token("custom_demo", Some(3600), renewable(false));
    assert_eq!(left.next_due(0, &POLICY), None);
    assert_eq!(left.chore(3600, &POLICY), None);
    assert_eq!(left.health(5000, &POLICY), Health::Valid);
}

#[test]
fn an_idle_refresh_token_is_used_before_it_lapses() {
    // Google's refresh tokens lapse after six months unused: used a week ahead.
    let g = token(
        "google",
        Some(3600),
        Upkeep::renewed(None, "google", false, true, None, 0),
    );
    let idle = catalog_entry("google")
        .unwrap()
        .lifetimes
        .refresh_idle
        .unwrap();
    let at = idle - MAX_KEEPALIVE_LEAD_SECS;
    assert_eq!(g.next_due(0, &POLICY), Some(at));
    assert_eq!(g.chore(at, &POLICY), Some(Chore::Refresh));
    assert_eq!(
        g.reconnect_by(),
        None,
        "an idle lapse is extended by refreshing"
    );
}

#[test]
fn a_provider_refresh_expiry_is_extended_once_then_warned_about_once() {
    let u = Upkeep::renewed(None, "custom_demo", false, true, Some(1000), 0);
    let t = token("custom_demo", Some(3600), u.clone());
    // First a refresh, 2 x warn_ahead before: it may move the expiry.
    assert_eq!(t.next_due(0, &POLICY), Some(800));
    assert_eq!(t.chore(800, &POLICY), Some(Chore::Refresh));
    // The refresh answer had no new expiry: the old one stands, and is announced.
    let mut after = token(
        "custom_demo",
        Some(4400),
        Upkeep::renewed(Some(&u), "custom_demo", false, true, None, 800),
    );
    after.updated_at = 800;
    assert_eq!(
        after.reconnect_by(),
        Some((1000, ExpiryReason::RefreshTokenExpires))
    );
    assert_eq!(after.next_due(800, &POLICY), Some(900));
    assert_eq!(after.chore(899, &POLICY), None);
    assert_eq!(
        after.chore(900, &POLICY),
        Some(Chore::Warn {
            reconnect_by: 1000,
            reason: ExpiryReason::RefreshTokenExpires
        })
    );
    assert_eq!(after.health(899, &POLICY), Health::Valid);
    assert_eq!(after.health(900, &POLICY), Health::Expiring);
    assert_eq!(after.health(1000, &POLICY), Health::Expired);
    // Once warned, nothing more is due for it.
    after.upkeep.warned_for = Some(1000);
    assert_eq!(after.chore(950, &POLICY), None);
    assert_eq!(after.next_due(950, &POLICY), None);
    // An answer that gives the same end, counted in whole seconds, does not move it.
    let same = Upkeep::renewed(Some(&u), "custom_demo", false, true, Some(201), 800);
    assert_eq!(same.refresh_expires_at, Some(1000));
    // A refresh that moved the expiry ends the warning for the old one.
    let moved = Upkeep::renewed(
        Some(&after.upkeep),
        "custom_demo",
        false,
        true,
        Some(1000),
        950,
    );
    let mut moved = token("custom_demo", Some(4550), moved);
    moved.updated_at = 950;
    assert_eq!(moved.reconnect_by().map(|r| r.0), Some(1950));
    assert_eq!(moved.next_due(950, &POLICY), Some(1750));
}

#[test]
fn a_grant_without_refresh_is_announced_at_half_its_life_at_the_earliest() {
    let t = token(
        "custom_demo",
        Some(60),
        Upkeep::renewed(None, "custom_demo", true, false, None, 0),
    );
    assert_eq!(t.reconnect_by(), Some((60, ExpiryReason::NoRefreshToken)));
    assert_eq!(
        t.next_due(0, &POLICY),
        Some(30),
        "half of 60 s, not 100 s ahead"
    );
    // Past its end, nothing is due any more.
    assert_eq!(t.next_due(60, &POLICY), None);
    assert_eq!(t.chore(61, &POLICY), None);
    assert_eq!(t.health(61, &POLICY), Health::Expired);
}

#[test]
fn failed_refreshes_back_off_and_revoked_tokens_are_never_due() {
    let t = token("custom_demo", Some(3600), renewable(true));
    let failed = t.upkeep.failed("provider_unavailable", 3500, &POLICY);
    assert_eq!(failed.retry_at, Some(3510));
    let again = failed.failed("provider_unavailable", 3510, &POLICY);
    assert_eq!(again.retry_at, Some(3530));
    let t2 = token("custom_demo", Some(3600), again);
    assert_eq!(t2.chore(3520, &POLICY), None);
    assert_eq!(t2.next_due(3520, &POLICY), Some(3530));
    assert_eq!(t2.chore(3530, &POLICY), Some(Chore::Refresh));
    let mut revoked = t2.clone();
    revoked.status = TokenStatus::Revoked;
    assert_eq!(revoked.next_due(0, &POLICY), None);
    assert_eq!(revoked.health(0, &POLICY), Health::Revoked);
    assert_eq!(POLICY.retry_delay(40), 6 * 3600);
}

#[test]
fn upkeep_is_stored_compactly() {
    assert_eq!(serde_json::to_string(&Upkeep::default()).unwrap(), "{}");
    let u = renewable(true);
    let text = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Upkeep>(&text).unwrap(), u);
}
