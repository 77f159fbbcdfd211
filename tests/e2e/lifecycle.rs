//! Starting and stopping the local server as an operator does.

use e2e::{client, Provider, Server};

#[tokio::test]
async fn first_start_prints_an_admin_key_once_and_keeps_only_its_hash() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut first = Server::start_with(dir.path(), None, None, "first.log", &[]).await?;
    let output = std::fs::read_to_string(&first.log_path)?;
    let key = output
        .split_whitespace()
        .find(|w| w.starts_with("ak."))
        .expect("the first start prints the operator key")
        .to_owned();
    assert!(key.len() >= 3 + 43, "at least 256 random bits");
    let stored = std::fs::read_to_string(first.data_dir.join("admin_key.sha256"))?;
    assert_eq!(stored.trim().len(), 64);
    assert!(!stored.contains(&key));
    let http = client();
    let list = |base: String, key: String| {
        let http = http.clone();
        async move {
            http.get(format!("{base}/v1/admin/providers"))
                .bearer_auth(key)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    assert_eq!(list(first.base.clone(), key.clone()).await?, 200);
    assert_eq!(list(first.base.clone(), "ak.wrong".into()).await?, 401);
    assert!(first.terminate().await?.success());

    // The next start prints no key, and the first one still works.
    let second = Server::start_with(dir.path(), None, None, "second.log", &[]).await?;
    let output = std::fs::read_to_string(&second.log_path)?;
    assert!(
        !output.contains("ak."),
        "a key was printed again:\n{output}"
    );
    assert_eq!(list(second.base.clone(), key).await?, 200);
    Ok(())
}

#[tokio::test]
async fn ctrl_c_or_sigterm_stops_the_server_cleanly() -> anyhow::Result<()> {
    // Ctrl-C in a terminal is SIGINT; service managers send SIGTERM.
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir()?;
        let mut server = Server::start(dir.path(), None).await?;
        let status = server.signal(signal).await?;
        assert!(status.success(), "SIG{signal}: exit status {status}");
        let log = std::fs::read_to_string(&server.log_path)?;
        assert!(log.contains("shutting down"), "SIG{signal}: {log}");
    }
    Ok(())
}

#[tokio::test]
async fn a_provider_down_at_start_is_discovered_once_it_is_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A port where nothing listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let file = dir.path().join("providers.yaml");
    std::fs::write(
        &file,
        format!(
            "providers:\n  late:\n    client_id: c\n    client_secret: s\n    issuer: http://127.0.0.1:{port}\n"
        ),
    )?;
    let server = Server::start(dir.path(), Some(&file)).await?;
    let http = client();
    let providers = |http: reqwest::Client, url: String| async move {
        http.get(url)
            .bearer_auth(e2e::ADMIN_KEY)
            .send()
            .await?
            .json::<serde_json::Value>()
            .await
    };
    let url = format!("{}/v1/admin/providers", server.base);
    let listed = providers(http.clone(), url.clone()).await?;
    let late = &listed["providers"][0];
    assert_eq!(late["name"], "late");
    assert!(
        late["not_ready"]
            .as_str()
            .unwrap_or("")
            .contains("discovery"),
        "{listed}"
    );
    assert!(!listed.to_string().contains("\"s\""), "no secret: {listed}");

    let _provider = Provider::start_on(dir.path(), port).await?;
    // The next use discovers it: a bot's link to it now leads to the provider.
    let base = &server.base;
    let bot: serde_json::Value = http
        .post(format!("{base}/v1/admin/bots"))
        .bearer_auth(e2e::ADMIN_KEY)
        .json(&serde_json::json!({"bot_id": "acme"}))
        .send()
        .await?
        .json()
        .await?;
    let bot_key = bot["api_key"].as_str().unwrap_or_default().to_owned();
    let put = http
        .put(format!("{base}/v1/bots/acme/integrations"))
        .bearer_auth(&bot_key)
        .header("content-type", "application/yaml")
        .body("- provider: late\n  context: user\n")
        .send()
        .await?;
    assert_eq!(put.status(), 200);
    let link: serde_json::Value = http
        .post(format!("{base}/v1/bots/acme/oauth-links"))
        .bearer_auth(&bot_key)
        .json(&serde_json::json!({"alias": "late", "user_id": "u-1"}))
        .send()
        .await?
        .json()
        .await?;
    let resp = http
        .get(link["url"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(resp.status(), 302);
    let location = e2e::location(resp)?;
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{port}/")),
        "{location}"
    );
    let listed = providers(http, url).await?;
    assert!(
        listed["providers"][0].get("not_ready").is_none(),
        "{listed}"
    );
    Ok(())
}
