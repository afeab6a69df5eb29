//! An answer before it becomes an HTTP response (so `$batch` can embed it), and the SAP
//! Gateway error bodies.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::model::Service;

/// Message codes the fake answers with. SAP treats them as opaque strings; these follow the
/// shape of real Gateway and application message ids (`<message class>/<number>`).
pub mod codes {
    /// Unknown entity set or navigation segment.
    pub const NO_SEGMENT: &str = "/IWBEP/CM_MGW_RT/021";
    /// No entity with the key.
    pub const NOT_FOUND: &str = "/IWBEP/CM_MGW_RT/020";
    /// Bad system query option (`$filter`, `$orderby`, `$select`, `$top`...).
    pub const BAD_QUERY: &str = "/IWBEP/CM_MGW_RT/022";
    /// Payload that does not deserialize (unknown property, wrong type, key change).
    pub const BAD_PAYLOAD: &str = "/IWBEP/CM_MGW_RT/004";
    /// A string longer than the property allows.
    pub const TOO_LONG: &str = "/IWBEP/CM_MGW_RT/017";
    /// An entity with the key exists already.
    pub const DUPLICATE: &str = "/IWBEP/CM_MGW_RT/005";
    /// `If-Match` missing on an ETag-enabled entity (HTTP 428).
    pub const PRECONDITION_REQUIRED: &str = "/IWBEP/CM_MGW_RT/154";
    /// `If-Match` does not match (HTTP 412).
    pub const PRECONDITION_FAILED: &str = "/IWBEP/CM_MGW_RT/153";
    /// Method not allowed on the entity set.
    pub const NOT_ALLOWED: &str = "/IWBEP/CM_MGW_RT/001";
    /// No such service (or version).
    pub const NO_SERVICE: &str = "/IWFND/MED/170";
    /// A technical exception in the backend (HTTP 5xx).
    pub const TECHNICAL: &str = "/IWBEP/CX_MGW_TECH_EXCEPTION";
    /// Requested quantity missing or not positive.
    pub const QUANTITY: &str = "ME/083";
    /// Material not maintained in the plant.
    pub const MATERIAL: &str = "M3/305";
    /// Account assignment object (cost center / WBS element) missing or unknown.
    pub const ACCOUNT_ASSIGNMENT: &str = "KI/235";
    /// A requisition without items.
    pub const NO_ITEMS: &str = "06/402";
    /// Finish date before start date.
    pub const DATES: &str = "CJ/021";
    /// Unknown processing status.
    pub const STATUS: &str = "CJ/042";
    /// The object is locked by another user.
    pub const LOCKED: &str = "MC/601";
    /// The WBS element / project already exists.
    pub const EXISTS: &str = "CJ/011";
}

/// A status, headers and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: value.to_string().into_bytes(),
        }
    }

    /// A text answer with `content_type`.
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into().into_bytes(),
        }
    }

    /// No content.
    pub fn empty(status: u16) -> Self {
        Answer { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        builder.body(Body::from(self.body)).unwrap_or_default()
    }
}

/// Where an error happens: its version and format, and the service for `innererror`.
#[derive(Clone, Copy)]
pub struct ErrorContext<'a> {
    /// v4 error shape.
    pub v4: bool,
    /// JSON (else the v2 XML error document).
    pub json: bool,
    /// The service, if resolved.
    pub service: Option<&'a Service>,
}

/// One detail of an error: (code, message, target).
pub type Detail<'a> = (&'a str, &'a str, &'a str);

/// The SAP Gateway error answer: v2 `{"error": {"code", "message": {"lang", "value"},
/// "innererror": {...}}}`, v4 `{"error": {"code", "message", "target", "details", "innererror"}}`,
/// or the v2 XML error document when JSON was not asked for.
pub fn error(status: u16, code: &str, message: &str, target: &str, ctx: ErrorContext<'_>) -> Answer {
    error_with_details(status, code, message, &[(code, message, target)], ctx)
}

/// [`error`] with several details (the first names the error itself).
pub fn error_with_details(
    status: u16,
    code: &str,
    message: &str,
    details: &[Detail<'_>],
    ctx: ErrorContext<'_>,
) -> Answer {
    let transaction: String = (0..32).map(|_| fastrand::alphanumeric().to_ascii_uppercase()).collect();
    let (service_id, component) = ctx.service.map_or(("", ""), |s| (s.v2_name, s.component));
    let version = ctx.service.map_or("0001", |s| s.v2_version);
    let target = details.first().map_or("", |d| d.2);
    if ctx.v4 {
        let details: Vec<Value> = details
            .iter()
            .skip(1)
            .map(|(c, m, t)| json!({"code": c, "message": m, "target": t, "@Common.numericSeverity": 4}))
            .collect();
        return Answer::json(
            status,
            &json!({"error": {
                "code": code, "message": message, "target": target, "details": details,
                "innererror": {"ErrorDetails": {
                    "@SAP__common.Application": {"ComponentId": component, "ServiceRepository": "SRVD_A2X",
                        "ServiceId": service_id, "ServiceVersion": version},
                    "@SAP__common.TransactionId": transaction,
                    "@SAP__common.Timestamp": "",
                    "@SAP__common.ErrorResolution": {"Analysis": "Use ADT feed reader \"SAP Gateway Error Log\"", "Note": "See SAP Note 1797736"}
                }}
            }}),
        );
    }
    if !ctx.json {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><error \
             xmlns=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\"><code>{code}</code>\
             <message xml:lang=\"en\">{}</message><innererror><transactionid>{transaction}</transactionid>\
             </innererror></error>",
            message.replace('&', "&amp;").replace('<', "&lt;")
        );
        return Answer::text(status, "application/xml; charset=utf-8", xml);
    }
    let errordetails: Vec<Value> = details
        .iter()
        .map(|(c, m, t)| json!({"code": c, "message": m, "propertyref": "", "severity": "error", "target": t, "transition": false}))
        .collect();
    Answer::json(
        status,
        &json!({"error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "application": {"component_id": component, "service_namespace": "/SAP/",
                    "service_id": service_id, "service_version": version},
                "transactionid": transaction,
                "timestamp": "",
                "Error_Resolution": {"SAP_Transaction": "For backend administrators: use ADT feed reader \"SAP Gateway Error Log\" or run transaction /IWFND/ERROR_LOG on SAP Gateway hub system and search for entries with the timestamp above for more details",
                    "SAP_Note": "See SAP Note 1797736 for error analysis (https://service.sap.com/sap/support/notes/1797736)"},
                "errordetails": errordetails
            }
        }}),
    )
}
