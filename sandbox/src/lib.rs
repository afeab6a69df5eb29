//! The sandbox: the five enterprise-system fakes of `sandbox/*` started together on loopback,
//! sharing one clock, each with its own fault controls under `/_sandbox` on its port.
//!
//! `qiao sandbox` starts one for flow development and prints [`Sandbox::describe`]; the demo
//! starts one in-process and hands [`Sandbox::env`] and [`Sandbox::secrets`] to the flow
//! loader, so the example flows in `flows/` read their URLs from `${env.*}` and their
//! credentials from `${secret.*}` exactly as they would against real systems.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Result;
use qiao_fake_dingtalk::DingTalkFake;
use qiao_fake_jira::JiraFake;
use qiao_fake_kingdee::KingdeeFake;
use qiao_fake_sap::SapFake;
use qiao_fake_yonyou::YonyouFake;
use qiao_sandbox_kit::{ADMIN_PREFIX, Clock, Ctx, Running, System};

/// Where the sandbox listens.
#[derive(Debug, Clone, Copy)]
pub struct SandboxOptions {
    /// The address to bind (loopback unless asked otherwise).
    pub host: IpAddr,
    /// Fixed ports `base`..`base+4` (jira, dingtalk, sap, kingdee, yonyou); free ports when
    /// `None`.
    pub port_base: Option<u16>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions { host: IpAddr::V4(Ipv4Addr::LOCALHOST), port_base: None }
    }
}

/// One running fake: the fake itself (for inspection), its context (faults, journal) and
/// its server.
pub struct Fake<T> {
    /// The fake.
    pub fake: Arc<T>,
    /// Its faults, clock and journal.
    pub ctx: Ctx,
    running: Running,
}

impl<T> Fake<T> {
    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }
}

/// A system as [`Sandbox::systems`] lists it: name, URL and demo credentials.
pub type SystemInfo<'a> = (&'static str, &'a str, Vec<(&'static str, String)>);

/// The five fakes.
pub struct Sandbox {
    /// The clock they share.
    pub clock: Clock,
    /// Jira Cloud.
    pub jira: Fake<JiraFake>,
    /// DingTalk.
    pub dingtalk: Fake<DingTalkFake>,
    /// SAP S/4HANA OData.
    pub sap: Fake<SapFake>,
    /// Kingdee K/3 Cloud.
    pub kingdee: Fake<KingdeeFake>,
    /// Yonyou YonBIP.
    pub yonyou: Fake<YonyouFake>,
}

async fn start_one<T: System>(
    make: impl FnOnce(Ctx) -> Arc<T>,
    clock: &Clock,
    addr: SocketAddr,
) -> Result<Fake<T>> {
    let ctx = Ctx::new(clock.clone());
    let fake = make(ctx.clone());
    let running = qiao_sandbox_kit::start(fake.clone(), ctx.clone(), addr).await?;
    Ok(Fake { fake, ctx, running })
}

impl Sandbox {
    /// Starts every fake.
    pub async fn start(options: SandboxOptions) -> Result<Sandbox> {
        let clock = Clock::new();
        let addr = |i: u16| SocketAddr::new(options.host, options.port_base.map_or(0, |b| b + i));
        Ok(Sandbox {
            jira: start_one(JiraFake::new, &clock, addr(0)).await?,
            dingtalk: start_one(DingTalkFake::new, &clock, addr(1)).await?,
            sap: start_one(SapFake::new, &clock, addr(2)).await?,
            kingdee: start_one(KingdeeFake::new, &clock, addr(3)).await?,
            yonyou: start_one(YonyouFake::new, &clock, addr(4)).await?,
            clock,
        })
    }

    /// Each system: name, URL and demo credentials.
    pub fn systems(&self) -> Vec<SystemInfo<'_>> {
        vec![
            ("jira", self.jira.url(), self.jira.fake.credentials()),
            ("dingtalk", self.dingtalk.url(), self.dingtalk.fake.credentials()),
            ("sap", self.sap.url(), self.sap.fake.credentials()),
            ("kingdee", self.kingdee.url(), self.kingdee.fake.credentials()),
            ("yonyou", self.yonyou.url(), self.yonyou.fake.credentials()),
        ]
    }

    /// The `${env.*}` values the example flows read: each system's URL and non-secret
    /// identifiers.
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = vec![
            ("JIRA_URL", self.jira.url().to_string()),
            ("JIRA_EMAIL", qiao_fake_jira::DEMO_EMAIL.to_string()),
            ("DINGTALK_URL", self.dingtalk.url().to_string()),
            ("DINGTALK_APP_KEY", qiao_fake_dingtalk::APP_KEY.to_string()),
            ("DINGTALK_AGENT_ID", qiao_fake_dingtalk::AGENT_ID.to_string()),
            ("DINGTALK_CORP_ID", qiao_fake_dingtalk::CORP_ID.to_string()),
            ("SAP_URL", self.sap.url().to_string()),
            ("SAP_USER", qiao_fake_sap::USER.to_string()),
            ("SAP_CLIENT", qiao_fake_sap::CLIENT.to_string()),
            ("KINGDEE_URL", self.kingdee.url().to_string()),
            ("KINGDEE_ACCT_ID", qiao_fake_kingdee::ACCT_ID.to_string()),
            ("KINGDEE_USER", qiao_fake_kingdee::USER_NAME.to_string()),
            ("KINGDEE_APP_ID", qiao_fake_kingdee::APP_ID.to_string()),
            ("YONYOU_URL", self.yonyou.url().to_string()),
            ("YONYOU_APP_KEY", qiao_fake_yonyou::APP_KEY.to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The `${secret.*}` values the example flows read.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, &str)> = vec![
            ("jira_api_token", qiao_fake_jira::DEMO_API_TOKEN),
            ("dingtalk_app_secret", qiao_fake_dingtalk::APP_SECRET),
            ("dingtalk_robot_token", qiao_fake_dingtalk::ROBOT_ACCESS_TOKEN),
            ("dingtalk_robot_secret", qiao_fake_dingtalk::ROBOT_SECRET),
            ("dingtalk_callback_token", qiao_fake_dingtalk::CALLBACK_TOKEN),
            ("dingtalk_aes_key", qiao_fake_dingtalk::CALLBACK_AES_KEY),
            ("sap_password", qiao_fake_sap::PASSWORD),
            ("kingdee_app_secret", qiao_fake_kingdee::APP_SECRET),
            ("yonyou_app_secret", qiao_fake_yonyou::APP_SECRET),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// What `qiao sandbox` prints: URLs, credentials, fault controls, and the shell lines
    /// that point the example flows at this sandbox.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (name, url, creds) in self.systems() {
            out.push_str(&format!("{name:<9} {url}\n"));
            for (k, v) in creds {
                out.push_str(&format!("          {k}: {v}\n"));
            }
        }
        out.push_str(&format!(
            "\nfault controls on every port: POST {ADMIN_PREFIX}/faults {{\"throttle\": 2, \"fail\": {{\"count\": 1, \"status\": 503}}, \"slow\": {{\"count\": 1, \"ms\": 2000}}, \"reset\": 1, \"expire_tokens\": true, \"invalidate_csrf\": true, \"bad_signature\": 1, \"partial\": {{\"count\": 1, \"items\": [0]}}, \"advance_clock_ms\": 7200000}}\n"
        ));
        out.push_str(&format!(
            "inspect: GET {ADMIN_PREFIX}/state (what was written), GET {ADMIN_PREFIX}/journal (every request)\n\n"
        ));
        out.push_str("# point the example flows at this sandbox:\n");
        for (k, v) in self.env() {
            out.push_str(&format!("export {k}={v}\n"));
        }
        for (k, v) in self.secrets() {
            let var: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                .collect();
            out.push_str(&format!("export QIAO_SECRET_{var}='{v}'\n"));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_fake_answers_its_admin_endpoint() {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let client = reqwest::Client::new();
        for (name, url, creds) in sandbox.systems() {
            assert!(!creds.is_empty(), "{name} prints demo credentials");
            let resp = client.get(format!("{url}{ADMIN_PREFIX}/state")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{name}");
        }
        let text = sandbox.describe();
        assert!(text.contains("export JIRA_URL=http://127.0.0.1:"), "{text}");
        assert!(text.contains("QIAO_SECRET_KINGDEE_APP_SECRET"), "{text}");
    }
}
