//! Starting and stopping the local server as an operator does.

use e2e::{client, Server};

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
