//! The PKI of a hosted control plane's etcd, minted in-process per HCP namespace (rcgen on
//! aws-lc-rs): a signer CA, one serving certificate for every member and a client certificate.
//!
//! HyperShift publishes the client material in the HCP namespace as the Secret
//! [`ETCD_CLIENT_SECRET`] (keys [`ETCD_CLIENT_CERT_KEY`], [`ETCD_CLIENT_KEY_KEY`]) and the CA
//! as the ConfigMap [`ETCD_CA_CONFIGMAP`] (key [`ETCD_CA_KEY`]); the operator writes the same
//! objects from an [`EtcdPki`].

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::services::EtcdServerTls;

/// Secret in the HCP namespace with the etcd client certificate and key.
pub const ETCD_CLIENT_SECRET: &str = "etcd-client-tls";
/// Key of the client certificate (PEM) in [`ETCD_CLIENT_SECRET`].
pub const ETCD_CLIENT_CERT_KEY: &str = "etcd-client.crt";
/// Key of the client private key (PEM) in [`ETCD_CLIENT_SECRET`].
pub const ETCD_CLIENT_KEY_KEY: &str = "etcd-client.key";
/// Key of the CA (PEM) that HyperShift also puts into [`ETCD_CLIENT_SECRET`].
pub const ETCD_CLIENT_CA_KEY: &str = "etcd-client-ca.crt";
/// ConfigMap in the HCP namespace with the etcd CA.
pub const ETCD_CA_CONFIGMAP: &str = "etcd-ca";
/// Key of the CA (PEM) in [`ETCD_CA_CONFIGMAP`].
pub const ETCD_CA_KEY: &str = "ca.crt";

/// Why minting or writing the PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or key generation failed.
    #[error("cannot mint the etcd certificates: {0}")]
    Mint(#[from] rcgen::Error),
    /// Writing a PEM file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The PEM material of one hosted etcd.
#[derive(Clone)]
pub struct EtcdPki {
    /// The signer CA certificate (what `etcd-ca`/`ca.crt` holds).
    pub ca_pem: String,
    /// The serving certificate (serverAuth and clientAuth: etcd's JSON gateway presents it to
    /// etcd's own gRPC port), with the SANs of [`server_sans`].
    pub server_cert_pem: String,
    /// Its key.
    pub server_key_pem: String,
    /// The client certificate (clientAuth), signed by the CA.
    pub client_cert_pem: String,
    /// Its key.
    pub client_key_pem: String,
}

impl std::fmt::Debug for EtcdPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("EtcdPki").finish_non_exhaustive()
    }
}

/// The SANs of the serving certificate of the etcd in `hcp_namespace` with pods `members`:
/// `localhost`, `127.0.0.1`, every `etcd-N.etcd-discovery.<ns>.svc` (and `.svc.cluster.local`),
/// the wildcard `*.etcd-discovery.<ns>.svc` and the client Service `etcd-client.<ns>.svc`.
pub fn server_sans(hcp_namespace: &str, members: &[String]) -> Vec<String> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for m in members {
        sans.push(format!("{m}.etcd-discovery.{hcp_namespace}.svc"));
        sans.push(format!("{m}.etcd-discovery.{hcp_namespace}.svc.cluster.local"));
    }
    sans.extend([
        format!("*.etcd-discovery.{hcp_namespace}.svc"),
        format!("*.etcd-discovery.{hcp_namespace}.svc.cluster.local"),
        format!("etcd-client.{hcp_namespace}.svc"),
        format!("etcd-client.{hcp_namespace}.svc.cluster.local"),
    ]);
    sans
}

impl EtcdPki {
    /// Mint a fresh CA, serving and client certificate for the etcd of `hcp_namespace`.
    pub fn mint(hcp_namespace: &str, members: &[String]) -> Result<EtcdPki, PkiError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::OrganizationalUnitName, "openshift");
        ca.distinguished_name.push(DnType::CommonName, "etcd-signer");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(server_sans(hcp_namespace, members))?;
        server
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "openshift");
        server.distinguished_name.push(DnType::CommonName, "etcd-server");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let server_cert_pem = server.signed_by(&server_key, &issuer)?.pem();

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "openshift");
        client.distinguished_name.push(DnType::CommonName, "etcd-client");
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert_pem = client.signed_by(&client_key, &issuer)?.pem();

        Ok(EtcdPki {
            ca_pem,
            server_cert_pem,
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem,
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// Write the server-side files (`ca.crt`, `server.crt`, `server.key`) into `dir` for
    /// [`crate::services::EtcdServer::start_tls`] and friends.
    pub fn write_server_files(&self, dir: &Path) -> Result<EtcdServerTls, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .map_err(|source| PkiError::Io {
                    path: path.clone(),
                    source,
                })
                .map(|()| path)
        };
        Ok(EtcdServerTls {
            trusted_ca_file: write("ca.crt", &self.ca_pem)?,
            cert_file: write("server.crt", &self.server_cert_pem)?,
            key_file: write("server.key", &self.server_key_pem)?,
        })
    }

    /// Client-side TLS settings with the client certificate (verifying the server against the
    /// CA by the URL's host, `127.0.0.1`).
    pub fn client_tls(&self) -> EtcdClientTls {
        EtcdClientTls {
            ca_pem: self.ca_pem.clone(),
            cert_pem: self.client_cert_pem.clone(),
            key_pem: self.client_key_pem.clone(),
            server_name: None,
        }
    }
}

/// Client-side TLS for [`super::EtcdKvClient::with_tls`] (PEM).
#[derive(Clone, Default)]
pub struct EtcdClientTls {
    /// The CA the server certificate must chain to.
    pub ca_pem: String,
    /// The client certificate; empty: present none (etcd then refuses the connection).
    pub cert_pem: String,
    /// Its private key; empty when `cert_pem` is.
    pub key_pem: String,
    /// The name to verify the server certificate against (e.g.
    /// `etcd-0.etcd-discovery.<ns>.svc` through a port-forward); default: the URL's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for EtcdClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClientTls")
            .field("client_cert", &!self.cert_pem.is_empty())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl EtcdClientTls {
    /// The same settings without a client certificate.
    pub fn without_client_cert(&self) -> EtcdClientTls {
        EtcdClientTls {
            cert_pem: String::new(),
            key_pem: String::new(),
            ..self.clone()
        }
    }

    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("invalid CA PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("invalid CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the CA PEM holds no certificate".to_string());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots);
        if self.cert_pem.is_empty() {
            return Ok(builder.with_no_client_auth());
        }
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid client certificate PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| format!("invalid client key PEM: {e}"))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("invalid client certificate or key: {e}"))
    }
}
