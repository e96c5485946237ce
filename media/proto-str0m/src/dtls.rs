//! str0m's aws-lc-rs DTLS provider with one change: the dimpl `Config` is built once and
//! shared, instead of once per `Rtc`.
//!
//! Why: `dimpl::ConfigBuilder::build` "always validates the crypto provider" — a test key
//! exchange on every supported group (P-256, P-384, X25519) and a test signature check — and
//! str0m-aws-lc-rs 0.7 builds a fresh `Config` in every `new_dtls`, i.e. for every `Rtc`. The
//! profile of `mem=300` showed that validation at ~80% of answering an offer (~0.8 ms of
//! ~1 ms). The instance wrapper below is str0m-aws-lc-rs's own (`AwsLcRsDtlsInstance`), which
//! is private; the config is what it builds (no server cookie: ICE has already checked the
//! return path), made once per MTU.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};

/// The provider: str0m-aws-lc-rs's, with the dimpl `Config` cached per MTU.
pub struct CachedConfigDtls {
    configs: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>,
    /// Certificate generation is not per connection: str0m's own provider does it.
    stock: &'static dyn DtlsProvider,
}

impl std::fmt::Debug for CachedConfigDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedConfigDtls").finish()
    }
}

impl CachedConfigDtls {
    pub fn new(stock: &'static dyn DtlsProvider) -> Self {
        CachedConfigDtls {
            configs: Mutex::new(Vec::new()),
            stock,
        }
    }

    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self
            .configs
            .lock()
            .map_err(|_| CryptoError::Other("dtls config cache poisoned".to_owned()))?;
        if let Some((_, c)) = configs.iter().find(|(m, _)| *m == mtu) {
            return Ok(c.clone());
        }
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl config creation failed: {e}")))?,
        );
        configs.push((mtu, config.clone()));
        Ok(config)
    }
}

impl DtlsProvider for CachedConfigDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.stock.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let cert = cert.clone();
        let dtls = match dtls_version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            v => {
                return Err(CryptoError::Other(format!("unsupported DTLS version: {v}")));
            }
        };
        Ok(Box::new(Instance { dtls }))
    }
}

/// str0m-aws-lc-rs's instance wrapper, as it is.
struct Instance {
    dtls: dimpl::Dtls,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish()
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.dtls.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.dtls.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.dtls.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.dtls.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.dtls.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.dtls.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.dtls.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.dtls.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.dtls.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.dtls.close()
    }
}
