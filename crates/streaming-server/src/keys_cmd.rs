//! `streaming-server keys create|list|revoke`: the same repository the server uses.

use anyhow::{Context, bail};
use serde_json::json;
use streaming_core::CoreError;
use streaming_core::config::Config;

use crate::app::open_repo;
use crate::cli::KeysCommand;

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let repo = open_repo(config).await?;
    match command {
        KeysCommand::Create { name, json } => {
            let created = repo
                .create_stream(&name)
                .await
                .context("creating the stream")?;
            let id = created.stream.id;
            let rtmp_url = config.rtmp_base();
            let watch_url = format!("{}/watch/{id}", config.http_base());
            if json {
                println!(
                    "{}",
                    json!({
                        "stream_id": id,
                        "stream_key": created.plaintext_key,
                        "rtmp_url": rtmp_url,
                        "watch_url": watch_url,
                    })
                );
            } else {
                println!("Stream created: {name}");
                println!("  stream id:  {id}");
                println!(
                    "  stream key: {}   (shown once; keep it secret)",
                    created.plaintext_key
                );
                println!("  publish to: {rtmp_url}/{}", created.plaintext_key);
                println!("  OBS:        Server {rtmp_url}  Stream Key (as above)");
                println!("  watch at:   {watch_url}");
            }
        }
        KeysCommand::List { json } => {
            let mut rows = Vec::new();
            for s in repo.list_streams(None).await? {
                let keys = repo.list_keys(s.id).await?;
                rows.push((s, keys));
            }
            if json {
                let items: Vec<_> = rows
                    .iter()
                    .map(|(s, keys)| {
                        json!({
                            "stream_id": s.id, "name": s.name, "status": s.status,
                            "keys": keys.iter().map(|k| json!({
                                "key_id": k.id, "prefix": k.prefix,
                                "created_at": k.created_at, "revoked_at": k.revoked_at,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", json!({ "streams": items }));
            } else {
                for (s, keys) in rows {
                    println!("{}  {:<8} {}", s.id, s.status, s.name);
                    for k in keys {
                        let state = if k.is_revoked() { "revoked" } else { "active" };
                        println!("    key {}  sk_{}…  {state}", k.id, k.prefix);
                    }
                }
            }
        }
        KeysCommand::Revoke { id, json } => {
            let revoked = match repo.revoke_key(id).await {
                Ok(_) => 1,
                Err(CoreError::KeyNotFound(_)) => match repo.revoke_stream_keys(id).await {
                    Ok(n) => n,
                    Err(CoreError::StreamNotFound(_)) => bail!("no key or stream with id {id}"),
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", json!({ "id": id, "revoked_keys": revoked }));
            } else {
                println!("Revoked {revoked} key(s) for {id}");
            }
        }
    }
    Ok(())
}
