//! The setup every end-to-end test against moto shares: a fresh [`Account`] (moto, the recording
//! proxy in front of it, SDK clients that read moto directly, a temp folder) and, in it, any
//! number of [`Stack`]s (unique names, a config file, a deployer that talks through the proxy).

use std::path::PathBuf;

use crate::artifact::artifact_path;
use crate::strict::FAST_QUOTA_SPEEDUP;
use crate::{Aws, Behaviour, Deployer, Moto, Proxy, StackNames, TempDir, write_config};

/// The proxy every fixture puts in front of moto: the strict AWS model fully on, but for the
/// behaviours a test turns off, each with its reason. Every proxy of an [`Account`] is made here,
/// so that how the suite models AWS in front of moto is decided in one place.
fn proxy_to(upstream: &str, without: &[(Behaviour, &str)]) -> Proxy {
    without.iter().fold(Proxy::builder(upstream), |b, (behaviour, why)| b.without(*behaviour, why)).start()
}

/// One fake AWS account for one test: the inventory of its moto server is the test's alone.
pub struct Account {
    /// In front of moto; the deployers of [`Account::stack`] use it, and it records their calls.
    pub proxy: Proxy,
    /// The strict model's behaviours this account's proxies leave out, and why.
    without: Vec<(Behaviour, String)>,
    /// Reads straight from moto (never through the proxy, so it records nothing).
    pub aws: Aws,
    /// Configs and other files of the test; kept when the test fails.
    pub dir: TempDir,
    /// Dropped after the proxy (fields drop in declaration order).
    pub moto: Moto,
}

impl Account {
    /// Start moto and a proxy in front of it.
    pub async fn start() -> Account {
        Account::start_without(&[]).await
    }

    /// The same, with behaviours of the strict model turned off, each with the reason (a test
    /// does it only where it reproduces that behaviour itself, to count attempts inside it).
    pub async fn start_without(without: &[(Behaviour, &str)]) -> Account {
        let moto = Moto::start();
        let proxy = proxy_to(moto.url(), without);
        let aws = Aws::new(moto.url()).await;
        let without = without.iter().map(|(b, why)| (*b, why.to_string())).collect();
        Account { proxy, without, aws, dir: TempDir::new("account"), moto }
    }

    /// Another proxy to the same moto, for a second deployer whose calls are recorded apart.
    pub fn another_proxy(&self) -> Proxy {
        let without: Vec<(Behaviour, &str)> = self.without.iter().map(|(b, why)| (*b, why.as_str())).collect();
        proxy_to(self.moto.url(), &without)
    }

    /// A stack with the base config ([`crate::base_config`]).
    pub fn stack(&self, prefix: &str) -> Stack {
        self.stack_with(prefix, &[])
    }

    /// A stack with `overrides` applied to the base config (see [`write_config`]).
    pub fn stack_with(&self, prefix: &str, overrides: &[(&str, &str)]) -> Stack {
        let artifact = artifact_path().display().to_string();
        let names = StackNames::unique(prefix);
        let config = write_config(self.dir.path(), &names, overrides);
        let deployer = paced(Deployer::with(&config, self.proxy.url()));
        Stack { names, config, deployer, artifact }
    }
}

/// The account's proxies run API Gateway's quotas [`FAST_QUOTA_SPEEDUP`] times faster than AWS
/// ([`crate::strict::Timings::fast`]): its deployers pace themselves by the same quotas, so that a
/// `down` does not wait AWS's 20 s between two UpdateUsagePlan calls where the model allows 2 s.
/// The deployer's pacing at AWS's own rates is unit-tested (`resources/apigw.rs`) and measured
/// by the benchmark, which runs AWS's quotas.
fn paced(mut deployer: Deployer) -> Deployer {
    deployer.env.push(("MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP".into(), FAST_QUOTA_SPEEDUP.to_string()));
    deployer
}

/// One stack of an [`Account`].
pub struct Stack {
    pub names: StackNames,
    pub config: PathBuf,
    /// `--config <config> --endpoint-url <the account's proxy>` on every run.
    pub deployer: Deployer,
    /// The handler zip to deploy (`$MOVIES_STACK_ARTIFACT`).
    pub artifact: String,
}

impl Stack {
    /// A deployer for this stack whose calls go through `proxy` instead.
    pub fn via(&self, proxy: &Proxy) -> Deployer {
        paced(Deployer::with(&self.config, proxy.url()))
    }
}
