//! Resolving S3 settings from the job's `[s3]` table, the `AWS_*` environment and a profile
//! of the AWS shared config files, in that order of precedence (see [`super::constants`]).
//!
//! object_store reads the environment (`AmazonS3Builder::from_env`) but not
//! `~/.aws/config` or `~/.aws/credentials`, so the two INI files are parsed here. The parser
//! reads only what a static-key setup needs: sections `[default]` and `[profile NAME]` in the
//! config file, `[NAME]` in the credentials file, and the keys `aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token`, `region` and `endpoint_url`. `#`/`;` comment
//! lines and indented (nested) lines are skipped; where both files set a key, the credentials
//! file wins, as with the AWS CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use object_store::aws::AmazonS3ConfigKey;
use object_store::ClientConfigKey;

use super::constants as c;
use super::StorageError;
use crate::job::S3Options;

/// Where a setting came from, for messages. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Job,
    Env,
    Profile(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Job => f.write_str("the job file's [s3] table"),
            Origin::Env => f.write_str("the AWS_* environment"),
            Origin::Profile(p) => write!(f, "AWS profile `{p}`"),
        }
    }
}

/// Resolved S3 settings. Its `Debug` shows keys and origins, never values.
#[derive(Clone, Default)]
pub struct S3Config {
    settings: Vec<(AmazonS3ConfigKey, String, Origin)>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.settings.iter().map(|(k, _, o)| format!("{} from {o}", k.as_ref())))
            .finish()
    }
}

fn is_credential(k: &AmazonS3ConfigKey) -> bool {
    matches!(
        k,
        AmazonS3ConfigKey::AccessKeyId | AmazonS3ConfigKey::SecretAccessKey | AmazonS3ConfigKey::Token
    )
}

impl S3Config {
    /// Resolves against the process environment and the real shared files.
    pub fn resolve(job: &S3Options) -> Result<S3Config, StorageError> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        S3Config::resolve_with(job, &vars)
    }

    /// Resolves against `vars` standing for the environment (tests pass their own, with
    /// `AWS_CONFIG_FILE`/`AWS_SHARED_CREDENTIALS_FILE` or `HOME` pointing at temp files).
    pub fn resolve_with(job: &S3Options, vars: &[(String, String)]) -> Result<S3Config, StorageError> {
        let env = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

        // Layer 3: the profile.
        let (profile_name, explicit) = match (&job.profile, env(c::ENV_PROFILE)) {
            (Some(p), _) => (p.clone(), Some(format!("[s3] {}", c::JOB_PROFILE))),
            (None, Some(p)) if !p.is_empty() => (p, Some(c::ENV_PROFILE.to_string())),
            _ => (c::DEFAULT_PROFILE.to_string(), None),
        };
        let files = AwsFiles::locate(&env);
        let profile = files.profile(&profile_name)?;
        if profile.is_none() {
            if let Some(from) = explicit {
                return Err(StorageError::Config(format!(
                    "AWS profile `{profile_name}` (from {from}) is in neither `{}` nor `{}`",
                    files.config.display(),
                    files.credentials.display()
                )));
            }
        }
        let origin = Origin::Profile(profile_name);
        let mut profile_layer = Vec::new();
        for (key, value) in profile.unwrap_or_default() {
            let k = match key.as_str() {
                c::PROFILE_ACCESS_KEY_ID => AmazonS3ConfigKey::AccessKeyId,
                c::PROFILE_SECRET_ACCESS_KEY => AmazonS3ConfigKey::SecretAccessKey,
                c::PROFILE_SESSION_TOKEN => AmazonS3ConfigKey::Token,
                c::PROFILE_REGION => AmazonS3ConfigKey::Region,
                c::PROFILE_ENDPOINT_URL => AmazonS3ConfigKey::Endpoint,
                _ => continue,
            };
            profile_layer.push((k, value));
        }

        // Layer 2: the environment, read like `AmazonS3Builder::from_env`.
        let mut env_layer = Vec::new();
        for (k, v) in vars {
            if k.starts_with(c::ENV_PREFIX) {
                if let Ok(key) = AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()) {
                    env_layer.push((key, v.clone()));
                }
            }
        }

        // Layer 1: the job file.
        let mut job_layer = Vec::new();
        let mut put = |k: AmazonS3ConfigKey, v: &Option<String>| {
            if let Some(v) = v {
                job_layer.push((k, v.clone()));
            }
        };
        put(AmazonS3ConfigKey::Endpoint, &job.endpoint);
        put(AmazonS3ConfigKey::Region, &job.region);
        put(AmazonS3ConfigKey::AccessKeyId, &job.access_key_id);
        put(AmazonS3ConfigKey::SecretAccessKey, &job.secret_access_key);
        put(AmazonS3ConfigKey::Token, &job.session_token);
        put(
            AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
            &job.allow_http.map(|b| b.to_string()),
        );

        let layers = [
            (profile_layer, origin),
            (env_layer, Origin::Env),
            (job_layer, Origin::Job),
        ];
        // The credentials come as a unit from the highest layer with an access key id.
        let creds_from = layers
            .iter()
            .rev()
            .find(|(l, _)| l.iter().any(|(k, _)| *k == AmazonS3ConfigKey::AccessKeyId))
            .map(|(_, o)| o.clone());
        let mut cfg = S3Config::default();
        for (layer, origin) in layers {
            for (k, v) in layer {
                if is_credential(&k) && creds_from.as_ref() != Some(&origin) {
                    continue;
                }
                cfg.settings.retain(|(have, _, _)| have != &k);
                cfg.settings.push((k, v, origin.clone()));
            }
        }
        Ok(cfg)
    }

    fn get(&self, k: &AmazonS3ConfigKey) -> Option<(&str, &Origin)> {
        self.settings
            .iter()
            .find(|(have, _, _)| have == k)
            .map(|(_, v, o)| (v.as_str(), o))
    }

    /// The endpoint URL, if not AWS's own.
    pub fn endpoint(&self) -> Option<&str> {
        self.get(&AmazonS3ConfigKey::Endpoint).map(|(v, _)| v)
    }

    pub fn region(&self) -> Option<&str> {
        self.get(&AmazonS3ConfigKey::Region)
            .or_else(|| self.get(&AmazonS3ConfigKey::DefaultRegion))
            .map(|(v, _)| v)
    }

    /// Where the static credentials come from; `None` leaves them to object_store's
    /// provider chain (web identity, container or instance credentials).
    pub fn credentials_origin(&self) -> Option<&Origin> {
        self.get(&AmazonS3ConfigKey::AccessKeyId).map(|(_, o)| o)
    }

    /// Every resolved key and value, for the builder.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (AmazonS3ConfigKey, &str)> {
        self.settings.iter().map(|(k, v, _)| (*k, v.as_str()))
    }
}

/// The locations of the two shared files.
struct AwsFiles {
    config: PathBuf,
    credentials: PathBuf,
}

impl AwsFiles {
    fn locate(env: &dyn Fn(&str) -> Option<String>) -> AwsFiles {
        let home = env(c::ENV_HOME).map(PathBuf::from).unwrap_or_default();
        AwsFiles {
            config: env(c::ENV_CONFIG_FILE)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(c::DEFAULT_CONFIG_FILE)),
            credentials: env(c::ENV_CREDENTIALS_FILE)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(c::DEFAULT_CREDENTIALS_FILE)),
        }
    }

    /// The profile's keys from both files (credentials file winning), or `None` when
    /// neither file has the profile.
    fn profile(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, StorageError> {
        let config = read_optional(&self.config)?.map(|t| parse_ini(&t, IniKind::Config));
        let creds = read_optional(&self.credentials)?.map(|t| parse_ini(&t, IniKind::Credentials));
        let mut found = None::<BTreeMap<String, String>>;
        for file in [config, creds].into_iter().flatten() {
            if let Some(p) = file.get(name) {
                found.get_or_insert_with(BTreeMap::new).extend(p.clone());
            }
        }
        Ok(found)
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, StorageError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StorageError::Io {
            op: "read",
            path: path.display().to_string(),
            source,
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IniKind {
    /// `~/.aws/config`: `[default]` and `[profile NAME]`; other sections (`[sso-session x]`,
    /// `[services x]`) are not profiles.
    Config,
    /// `~/.aws/credentials`: `[NAME]`.
    Credentials,
}

/// Profile name → key → value. Keys are lower-cased; values are trimmed and kept verbatim
/// (no inline comments: a secret may contain `#` or `;`).
pub(crate) fn parse_ini(text: &str, kind: IniKind) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            current = match kind {
                IniKind::Credentials => Some(section.to_string()),
                IniKind::Config if section == c::DEFAULT_PROFILE => Some(section.to_string()),
                IniKind::Config => section
                    .strip_prefix("profile")
                    .filter(|rest| rest.starts_with([' ', '\t']))
                    .map(|rest| rest.trim().to_string()),
            };
            continue;
        }
        // Indented lines belong to a nested block such as `s3 =\n  addressing_style = path`.
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let (Some(section), Some((k, v))) = (&current, line.split_once('=')) else {
            continue;
        };
        out.entry(section.clone())
            .or_default()
            .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# comment
[default]
region = eu-west-1

[profile minio]
region = us-east-2
endpoint_url = http://127.0.0.1:9000
s3 =
  addressing_style = path
aws_access_key_id = FROMCONFIG

[sso-session corp]
region = ap-south-1
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = default/secret+with#hash

[minio]
aws_access_key_id = MINIOKEY
aws_secret_access_key = miniosecret
aws_session_token = miniotoken
";

    fn files() -> (tempfile::TempDir, Vec<(String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), CONFIG).unwrap();
        std::fs::write(dir.path().join("credentials"), CREDENTIALS).unwrap();
        let vars = vec![
            (
                c::ENV_CONFIG_FILE.to_string(),
                dir.path().join("config").display().to_string(),
            ),
            (
                c::ENV_CREDENTIALS_FILE.to_string(),
                dir.path().join("credentials").display().to_string(),
            ),
        ];
        (dir, vars)
    }

    fn value(cfg: &S3Config, k: AmazonS3ConfigKey) -> Option<String> {
        cfg.get(&k).map(|(v, _)| v.to_string())
    }

    #[test]
    fn ini_sections_keys_comments_and_nesting() {
        let cfg = parse_ini(CONFIG, IniKind::Config);
        assert_eq!(cfg.keys().collect::<Vec<_>>(), ["default", "minio"]);
        assert_eq!(cfg["minio"]["endpoint_url"], "http://127.0.0.1:9000");
        assert_eq!(cfg["minio"]["aws_access_key_id"], "FROMCONFIG");
        assert!(!cfg["minio"].contains_key("addressing_style"));
        let creds = parse_ini(CREDENTIALS, IniKind::Credentials);
        assert_eq!(creds["default"]["aws_secret_access_key"], "default/secret+with#hash");
        // `[profile x]` is config-file syntax only.
        let odd = parse_ini("[profile x]\nregion = a\n[profilex]\nregion = b\n", IniKind::Config);
        assert_eq!(odd.keys().collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn default_profile_when_none_is_named() {
        let (_d, vars) = files();
        let cfg = S3Config::resolve_with(&S3Options::default(), &vars).unwrap();
        assert_eq!(cfg.region(), Some("eu-west-1"));
        assert_eq!(
            value(&cfg, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("DEFAULTKEY")
        );
        assert_eq!(cfg.credentials_origin(), Some(&Origin::Profile("default".into())));
    }

    #[test]
    fn named_profile_from_env_credentials_file_wins() {
        let (_d, mut vars) = files();
        vars.push((c::ENV_PROFILE.into(), "minio".into()));
        let cfg = S3Config::resolve_with(&S3Options::default(), &vars).unwrap();
        assert_eq!(cfg.endpoint(), Some("http://127.0.0.1:9000"));
        assert_eq!(cfg.region(), Some("us-east-2"));
        assert_eq!(value(&cfg, AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("MINIOKEY"));
        assert_eq!(value(&cfg, AmazonS3ConfigKey::Token).as_deref(), Some("miniotoken"));
    }

    #[test]
    fn job_beats_env_beats_profile() {
        let (_d, mut vars) = files();
        vars.push((c::ENV_PROFILE.into(), "minio".into()));
        vars.push(("AWS_REGION".into(), "env-region".into()));
        vars.push(("AWS_ENDPOINT_URL".into(), "http://env:1".into()));
        vars.push(("AWS_ALLOW_HTTP".into(), "true".into()));
        vars.push(("AWS_ACCESS_KEY_ID".into(), "ENVKEY".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY".into(), "envsecret".into()));
        vars.push(("NOT_AWS_REGION".into(), "ignored".into()));
        let cfg = S3Config::resolve_with(&S3Options::default(), &vars).unwrap();
        assert_eq!(cfg.region(), Some("env-region"));
        assert_eq!(cfg.endpoint(), Some("http://env:1"));
        assert_eq!(cfg.credentials_origin(), Some(&Origin::Env));
        // The profile's session token does not ride along with the environment's key.
        assert_eq!(value(&cfg, AmazonS3ConfigKey::Token), None);
        assert_eq!(
            value(&cfg, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );

        let job = S3Options {
            endpoint: Some("http://job:2".into()),
            access_key_id: Some("JOBKEY".into()),
            secret_access_key: Some("jobsecret".into()),
            allow_http: Some(false),
            ..Default::default()
        };
        let cfg = S3Config::resolve_with(&job, &vars).unwrap();
        assert_eq!(cfg.endpoint(), Some("http://job:2"));
        assert_eq!(cfg.region(), Some("env-region"));
        assert_eq!(value(&cfg, AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("JOBKEY"));
        assert_eq!(
            value(&cfg, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("jobsecret")
        );
        assert_eq!(cfg.credentials_origin(), Some(&Origin::Job));
        assert_eq!(
            value(&cfg, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("false")
        );
        // Debug output names keys and origins only.
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("jobsecret") && !dbg.contains("JOBKEY"), "{dbg}");
    }

    #[test]
    fn job_profile_overrides_env_profile_and_missing_named_profile_is_an_error() {
        let (_d, mut vars) = files();
        vars.push((c::ENV_PROFILE.into(), "nope".into()));
        let err = S3Config::resolve_with(&S3Options::default(), &vars).unwrap_err();
        assert!(
            err.to_string().contains("AWS profile `nope` (from AWS_PROFILE)"),
            "{err}"
        );
        let job = S3Options {
            profile: Some("minio".into()),
            ..Default::default()
        };
        let cfg = S3Config::resolve_with(&job, &vars).unwrap();
        assert_eq!(cfg.credentials_origin(), Some(&Origin::Profile("minio".into())));
    }

    #[test]
    fn home_locates_the_files_and_missing_files_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let vars = vec![(c::ENV_HOME.to_string(), dir.path().display().to_string())];
        let cfg = S3Config::resolve_with(&S3Options::default(), &vars).unwrap();
        assert_eq!(cfg.credentials_origin(), None);
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), CREDENTIALS).unwrap();
        let cfg = S3Config::resolve_with(&S3Options::default(), &vars).unwrap();
        assert_eq!(
            value(&cfg, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("DEFAULTKEY")
        );
    }
}
