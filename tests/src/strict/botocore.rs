//! AWS's own service models, as botocore ships them (`botocore/data/<service>/<api-version>/
//! service-2.json.gz`), loaded lazily by SigV4 signing name and shared by every proxy of the test
//! process (a model never changes while the process runs).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

/// Why a service model could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "botocore's service models not found under {0}/lib/python3*/site-packages/botocore/data: \
         run scripts/setup.sh or set MOVIES_STACK_VENV to the venv holding moto (and botocore)"
    )]
    NoBotocore(String),
    #[error("botocore has no service model for the signing name {signing_name:?} (looked for {dir})")]
    NoService { signing_name: String, dir: String },
    #[error("reading the service model {path}: {reason}")]
    Read { path: String, reason: String },
}

/// The wire protocol of a service, as the model names it (`metadata.protocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireProtocol {
    /// awsJson1_0 / awsJson1_1: `X-Amz-Target: <targetPrefix>.<Operation>`, JSON body.
    Json,
    /// awsQuery: `Action=<Operation>` form body.
    Query,
    /// EC2's own query dialect.
    Ec2,
    /// restJson1: method + URI template, labels, query string, headers and a JSON body.
    RestJson,
}

impl WireProtocol {
    fn from_name(name: &str) -> Option<WireProtocol> {
        match name {
            "json" => Some(WireProtocol::Json),
            "query" => Some(WireProtocol::Query),
            "ec2" => Some(WireProtocol::Ec2),
            "rest-json" => Some(WireProtocol::RestJson),
            _ => None,
        }
    }
}

/// One segment of a REST URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{Label}`: one path segment.
    Label(String),
    /// `{Label+}`: the rest of the path.
    Greedy(String),
}

/// A REST operation's `http.method` + `http.requestUri`.
#[derive(Debug, Clone)]
struct Route {
    method: String,
    segments: Vec<Segment>,
    /// Literal query parts of the template (`?versions`, `?mode=import`): all must be present.
    query: Vec<(String, Option<String>)>,
    operation: String,
}

impl Route {
    fn parse(operation: &str, method: &str, uri: &str) -> Route {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(label) => match label.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_string()),
                    None => Segment::Label(label.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            })
            .collect();
        let query = query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| match q.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (q.to_string(), None),
            })
            .collect();
        Route { method: method.to_string(), segments, query, operation: operation.to_string() }
    }

    /// The labels (raw, still percent-encoded) if `segs` matches this template.
    fn matches(&self, method: &str, segs: &[&str], query: &[(String, String)]) -> Option<Vec<(String, String)>> {
        if self.method != method {
            return None;
        }
        let query_ok =
            self.query.iter().all(|(k, v)| query.iter().any(|(qk, qv)| qk == k && v.as_ref().is_none_or(|v| v == qv)));
        if !query_ok {
            return None;
        }
        let mut labels = Vec::new();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    if segs.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Label(name) => {
                    labels.push((name.clone(), (*segs.get(i)?).to_string()));
                    i += 1;
                }
                Segment::Greedy(name) => {
                    if i >= segs.len() {
                        return None;
                    }
                    labels.push((name.clone(), segs[i..].join("/")));
                    i = segs.len();
                }
            }
        }
        (i == segs.len()).then_some(labels)
    }

    /// More literal segments and query parts make a more specific template
    /// (`/restapis/{id}/resources` beats `/restapis/{id}/{anything}`).
    fn specificity(&self) -> (usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (literals, self.query.len())
    }
}

/// A REST request matched to its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestMatch {
    pub operation: String,
    /// URI labels, percent-decoded.
    pub labels: Vec<(String, String)>,
}

/// A pattern from the model compiled for Rust's regex engine, or why it cannot be.
#[derive(Debug, Clone)]
pub enum Pattern {
    Checkable(Regex),
    /// The engine cannot compile it (lookaround, a Java-only class, ...): listed, never passed
    /// as checked.
    NotCheckable(String),
}

/// One service's model.
#[derive(Debug)]
pub struct ServiceModel {
    /// botocore's folder name (`lambda`, `resourcegroupstaggingapi`, ...).
    pub folder: String,
    pub api_version: String,
    pub protocol: Option<WireProtocol>,
    /// The protocol names the model lists, for messages when none is supported here.
    pub protocol_names: Vec<String>,
    pub target_prefix: Option<String>,
    operations: Map<String, Value>,
    shapes: Map<String, Value>,
    routes: Vec<Route>,
    patterns: Mutex<HashMap<String, Pattern>>,
}

impl ServiceModel {
    /// Parse a `service-2.json` document.
    pub fn from_json(folder: &str, api_version: &str, doc: Value) -> ServiceModel {
        let metadata = &doc["metadata"];
        let mut protocol_names: Vec<String> = metadata["protocols"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if protocol_names.is_empty()
            && let Some(p) = metadata["protocol"].as_str()
        {
            protocol_names.push(p.to_string());
        }
        // `protocols` lists what the service speaks, preferred first (CloudWatch: CBOR, then
        // JSON, then query); the SDKs the deployer uses speak one of ours.
        let protocol = protocol_names.iter().find_map(|p| WireProtocol::from_name(p));
        let operations = doc["operations"].as_object().cloned().unwrap_or_default();
        let shapes = doc["shapes"].as_object().cloned().unwrap_or_default();
        let routes = operations
            .iter()
            .filter_map(|(name, op)| {
                Some(Route::parse(name, op["http"]["method"].as_str()?, op["http"]["requestUri"].as_str()?))
            })
            .collect();
        ServiceModel {
            folder: folder.to_string(),
            api_version: api_version.to_string(),
            protocol,
            protocol_names,
            target_prefix: metadata["targetPrefix"].as_str().map(str::to_string),
            operations,
            shapes,
            routes,
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// The operation's definition (`http`, `input`, ...), if the model has it.
    pub fn operation(&self, name: &str) -> Option<&Value> {
        self.operations.get(name)
    }

    /// The input shape's name of an operation (`None`: it takes no input).
    pub fn input_shape(&self, operation: &str) -> Option<&str> {
        self.operations.get(operation)?["input"]["shape"].as_str()
    }

    pub fn shape(&self, name: &str) -> Option<&Value> {
        self.shapes.get(name)
    }

    /// Match a REST request (raw path, decoded query pairs) to the most specific template.
    pub fn rest_operation(&self, method: &str, raw_path: &str, query: &[(String, String)]) -> Option<RestMatch> {
        let segs: Vec<&str> = raw_path.split('/').filter(|s| !s.is_empty()).collect();
        self.routes
            .iter()
            .filter_map(|r| r.matches(method, &segs, query).map(|labels| (r, labels)))
            .max_by_key(|(r, _)| r.specificity())
            .map(|(r, labels)| RestMatch {
                operation: r.operation.clone(),
                labels: labels.into_iter().map(|(k, v)| (k, crate::proxy::percent_decode_path(&v))).collect(),
            })
    }

    /// The model's pattern compiled as AWS applies it: to the WHOLE value.
    pub fn pattern(&self, pattern: &str) -> Pattern {
        let mut cache = self.patterns.lock().unwrap();
        cache.entry(pattern.to_string()).or_insert_with(|| compile_pattern(pattern)).clone()
    }
}

/// Java's way of writing "any supplementary character" as a surrogate-pair range, which a regex
/// over Unicode scalar values (Rust's) writes as one range.
const JAVA_SUPPLEMENTARY: &str = r"\uD800\uDC00-\uDBFF\uDFFF";
const SUPPLEMENTARY: &str = r"\x{10000}-\x{10FFFF}";

/// Compile a model pattern (Java regex syntax), anchored: AWS matches the whole string.
pub fn compile_pattern(pattern: &str) -> Pattern {
    let translated = pattern.replace(JAVA_SUPPLEMENTARY, SUPPLEMENTARY);
    match Regex::new(&format!("^(?:{translated})$")) {
        Ok(r) => Pattern::Checkable(r),
        Err(e) => Pattern::NotCheckable(e.to_string().lines().last().unwrap_or("").trim().to_string()),
    }
}

/// Where botocore's `data` folder is: `<venv>/lib/python3*/site-packages/botocore/data`.
pub fn botocore_data_dir(venv: &Path) -> Result<PathBuf, ModelError> {
    let lib = venv.join("lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
                .map(|e| e.path().join("site-packages").join("botocore").join("data"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().ok_or_else(|| ModelError::NoBotocore(venv.display().to_string()))
}

/// botocore's folder for a SigV4 signing name, where they differ.
fn folder_for(signing_name: &str) -> &str {
    match signing_name {
        "tagging" => "resourcegroupstaggingapi",
        "monitoring" => "cloudwatch",
        "execute-api" => "apigateway",
        other => other,
    }
}

/// Load the newest api-version of a service's model from botocore's data folder.
pub fn load_service(data: &Path, signing_name: &str) -> Result<ServiceModel, ModelError> {
    let folder = folder_for(signing_name);
    let dir = data.join(folder);
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("service-2.json.gz").is_file()).collect()
        })
        .unwrap_or_default();
    // api-versions are ISO dates: the newest sorts last.
    versions.sort();
    let newest = versions.pop().ok_or_else(|| ModelError::NoService {
        signing_name: signing_name.to_string(),
        dir: dir.display().to_string(),
    })?;
    let path = newest.join("service-2.json.gz");
    let read_err = |reason: String| ModelError::Read { path: path.display().to_string(), reason };
    let file = std::fs::File::open(&path).map_err(|e| read_err(e.to_string()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| read_err(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
    let version = newest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(ServiceModel::from_json(folder, &version, doc))
}

type Cache = Mutex<HashMap<String, Result<Arc<ServiceModel>, ModelError>>>;

/// The model of the service with this signing name, loaded once per test process from the venv
/// (`MOVIES_STACK_VENV`, see [`crate::venv_dir`]).
pub fn service(signing_name: &str) -> Result<Arc<ServiceModel>, ModelError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().unwrap().get(signing_name) {
        return hit.clone();
    }
    // Loaded outside the lock: EC2's model takes a moment and other services need not wait.
    let loaded = botocore_data_dir(&crate::venv_dir()).and_then(|d| load_service(&d, signing_name)).map(Arc::new);
    cache.lock().unwrap().entry(signing_name.to_string()).or_insert(loaded).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_pick_the_most_specific_template_and_decode_labels() {
        let lambda = service("lambda").expect("lambda model");
        let m = lambda.rest_operation("GET", "/2015-03-31/functions/my-fn/configuration", &[]).unwrap();
        assert_eq!(m.operation, "GetFunctionConfiguration");
        assert_eq!(m.labels, vec![("FunctionName".to_string(), "my-fn".to_string())]);
        let m = lambda.rest_operation("GET", "/2015-03-31/functions/%28known%20after%20apply%29/policy", &[]).unwrap();
        assert_eq!(m.operation, "GetPolicy");
        assert_eq!(m.labels[0].1, "(known after apply)");
        assert_eq!(lambda.rest_operation("GET", "/2015-03-31/functions/", &[]).unwrap().operation, "ListFunctions");
        let list = [("List".to_string(), "ALL".to_string())];
        assert_eq!(
            lambda.rest_operation("GET", "/2019-09-30/functions/f/provisioned-concurrency", &list).unwrap().operation,
            "ListProvisionedConcurrencyConfigs"
        );

        let apigw = service("apigateway").expect("apigateway model");
        assert_eq!(apigw.rest_operation("GET", "/restapis/a1/resources", &[]).unwrap().operation, "GetResources");
        assert_eq!(apigw.rest_operation("POST", "/restapis/a1/resources/r1", &[]).unwrap().operation, "CreateResource");
        let import = [("mode".to_string(), "import".to_string())];
        assert_eq!(apigw.rest_operation("POST", "/restapis", &import).unwrap().operation, "ImportRestApi");
        assert_eq!(apigw.rest_operation("POST", "/restapis", &[]).unwrap().operation, "CreateRestApi");
        let tags =
            apigw.rest_operation("GET", "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fa1", &[]).unwrap();
        assert_eq!(tags.operation, "GetTags");
        assert_eq!(tags.labels[0].1, "arn:aws:apigateway:us-east-1::/restapis/a1");
        assert!(apigw.rest_operation("PATCH", "/restapis/a1/widgets", &[]).is_none());
    }

    #[test]
    fn signing_names_map_to_botocore_folders_and_newest_versions() {
        assert_eq!(service("tagging").unwrap().folder, "resourcegroupstaggingapi");
        // dynamodb/2011-12-05 has no service model any more; 2012-08-10 is the newest.
        let ddb = service("dynamodb").unwrap();
        assert_eq!((ddb.api_version.as_str(), ddb.protocol), ("2012-08-10", Some(WireProtocol::Json)));
        assert_eq!(service("ec2").unwrap().protocol, Some(WireProtocol::Ec2));
        assert_eq!(service("iam").unwrap().protocol, Some(WireProtocol::Query));
        assert!(matches!(service("no-such-service"), Err(ModelError::NoService { .. })));
    }

    #[test]
    fn patterns_are_anchored_and_java_surrogate_ranges_translated() {
        let Pattern::Checkable(r) = compile_pattern("[a-z]+") else { panic!("checkable") };
        assert!(r.is_match("abc") && !r.is_match("abc1"), "the whole value must match");
        let Pattern::Checkable(r) = compile_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t\n\r]*")
        else {
            panic!("the surrogate-pair idiom is translated")
        };
        assert!(r.is_match("héllo 🎬"));
        assert!(matches!(compile_pattern(r"\p{Alnum}+"), Pattern::NotCheckable(_)));
        assert!(matches!(compile_pattern(r"(?!aws:).*"), Pattern::NotCheckable(_)));
    }
}
