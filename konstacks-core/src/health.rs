//! Health gates of zero-downtime replacements: probes that decide whether a new VM serves
//! traffic before the old one is deleted. Probes use the injected clock between attempts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::base::clock::OpContext;
use crate::kind::Kind;
use crate::kind::Selector;
use crate::model::gate::{HealthCheck, HealthGate};
use crate::provider::Provider;

/// How long one TCP connect or HTTP exchange may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts a TCP connection at `addr` (`host:port`).
pub async fn tcp_probe(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("TCP {addr}: {e}")),
        Err(_) => Err(format!("TCP {addr}: no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

/// `GET path` at `addr` answers with `status`.
pub async fn http_probe(addr: &str, path: &str, status: u16) -> Result<(), String> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("HTTP {addr}: {e}"))?;
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: konstacks-health\r\n\r\n");
        conn.write_all(req.as_bytes()).await.map_err(|e| format!("HTTP {addr}: {e}"))?;
        let mut buf = vec![0u8; 512];
        let n = conn.read(&mut buf).await.map_err(|e| format!("HTTP {addr}: {e}"))?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(c) if c == status => Ok(()),
            Some(c) => Err(format!("HTTP {addr}{path}: status {c}, expected {status}")),
            None => Err(format!("HTTP {addr}{path}: not an HTTP answer")),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("HTTP {addr}{path}: no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

fn host(attrs: &BTreeMap<String, Value>) -> Result<String, String> {
    ["public_ip", "private_ip"]
        .iter()
        .filter_map(|k| attrs.get(*k).and_then(Value::as_str))
        .find(|ip| !ip.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the instance has no IP address to probe".to_string())
}

async fn probe_once(
    check: &HealthCheck,
    p: &Provider,
    kind: Kind,
    cx: &OpContext,
    id: &str,
    attrs: &BTreeMap<String, Value>,
) -> Result<(), String> {
    match check {
        HealthCheck::ProviderStatus => {
            let found = p
                .read_many(cx, kind, &Selector::Ids(vec![id.to_string()]))
                .await
                .map_err(|e| format!("reading {id}: {e}"))?;
            let status = found
                .iter()
                .find(|(i, _)| i == id)
                .and_then(|(_, a)| a.get("status").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "not visible".into());
            if status == "running" {
                Ok(())
            } else {
                Err(format!("the provider reports {id} as `{status}`"))
            }
        }
        HealthCheck::Tcp { port } => tcp_probe(&format!("{}:{port}", host(attrs)?)).await,
        HealthCheck::Http { port, path, status } => {
            http_probe(&format!("{}:{port}", host(attrs)?), path, *status).await
        }
    }
}

/// Probe until the gate passes or its time is up; the error is the last probe's.
pub(crate) async fn wait_healthy(
    gate: &HealthGate,
    p: &Provider,
    kind: Kind,
    cx: &OpContext,
    id: &str,
    attrs: &BTreeMap<String, Value>,
) -> Result<(), String> {
    let start = cx.clock.now();
    let limit = Duration::from_secs(gate.timeout_secs);
    loop {
        let err = match probe_once(&gate.check, p, kind, cx, id, attrs).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if cx.clock.now().saturating_sub(start) >= limit {
            return Err(format!("{err} (still failing after {}s)", gate.timeout_secs));
        }
        cx.clock.sleep(Duration::from_secs(gate.interval_secs.max(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_and_http_probes_against_a_local_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if req.starts_with("GET /healthz ") {
                    "HTTP/1.0 200 OK\r\n\r\n"
                } else {
                    "HTTP/1.0 503 Busy\r\n\r\n"
                };
                let _ = c.write_all(answer.as_bytes()).await;
            }
        });
        assert!(tcp_probe(&addr).await.is_ok());
        assert!(http_probe(&addr, "/healthz", 200).await.is_ok());
        let err = http_probe(&addr, "/other", 200).await.err().unwrap_or_default();
        assert!(err.contains("status 503"), "{err}");
        assert!(tcp_probe("127.0.0.1:1").await.is_err());
    }
}
