//! The bridge between the generated `handler` exports and [`Connector`]: parses the host's
//! JSON text, calls the trait, converts the results back. [`export_connector!`] expands to a
//! thin `Guest` impl over the functions here, so the conversions are unit-tested natively.

/// Implements the component's exports for a type that implements [`Connector`].
///
/// ```ignore
/// struct MyConnector;
/// impl qiao_sdk::Connector for MyConnector { /* ... */ }
/// qiao_sdk::export_connector!(MyConnector);
/// ```
///
/// On `wasm32` this implements the generated `handler` interface and exports it. On native
/// targets it only checks at compile time that the type implements [`Connector`], so several
/// connectors can be linked into one test binary.
///
/// [`Connector`]: crate::Connector
#[macro_export]
macro_rules! export_connector {
    ($ty:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct __QiaoConnectorExport;

            impl $crate::__private::wit::Guest for __QiaoConnectorExport {
                fn describe() -> $crate::__private::wit::Info {
                    $crate::__private::describe::<$ty>()
                }
                fn validate_config(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::__private::wit::Error> {
                    $crate::__private::validate_config::<$ty>(config)
                }
                fn poll(
                    op: ::std::string::String,
                    config: ::std::string::String,
                    params: ::std::string::String,
                    cursor: ::core::option::Option<::std::string::String>,
                ) -> ::core::result::Result<$crate::__private::wit::Batch, $crate::__private::wit::Error>
                {
                    $crate::__private::poll::<$ty>(op, config, params, cursor)
                }
                fn invoke(
                    op: ::std::string::String,
                    config: ::std::string::String,
                    input: ::std::string::String,
                    idempotency_key: ::std::string::String,
                ) -> ::core::result::Result<
                    $crate::__private::wit::ActionOutput,
                    $crate::__private::wit::Error,
                > {
                    $crate::__private::invoke::<$ty>(op, config, input, idempotency_key)
                }
                fn verify_webhook(
                    config: ::std::string::String,
                    headers: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                    body: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<
                    $crate::__private::wit::WebhookResult,
                    $crate::__private::wit::Error,
                > {
                    $crate::__private::verify_webhook::<$ty>(config, headers, body)
                }
            }

            $crate::bindings::export!(__QiaoConnectorExport with_types_in $crate::bindings);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::__private::assert_connector::<$ty>();
    };
}

/// Used by [`export_connector!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use serde_json::Value;

    pub use crate::bindings::exports::qiao::connector::handler as wit;
    use crate::bindings::qiao::connector::types as wit_types;
    use crate::{
        ActionOutput, Batch, Connector, Error, Info, InvokeRequest, OperationKind, PollRequest, SourceRecord,
        WebhookRequest, WebhookResult,
    };

    /// Compiles only when `C` implements [`Connector`].
    pub const fn assert_connector<C: Connector>() {}

    /// `describe`, with schemas as JSON text.
    pub fn describe<C: Connector>() -> wit::Info {
        info_to_wit(C::describe())
    }

    /// `validate-config`.
    pub fn validate_config<C: Connector>(config: String) -> Result<(), wit::Error> {
        let config = parse_json(&config, "config", Error::config).map_err(error_to_wit)?;
        C::validate_config(&config).map_err(error_to_wit)
    }

    /// `poll`.
    pub fn poll<C: Connector>(
        op: String,
        config: String,
        params: String,
        cursor: Option<String>,
    ) -> Result<wit::Batch, wit::Error> {
        let run = || {
            let config = parse_json(&config, "config", Error::config)?;
            let params = parse_json(&params, "params", Error::config)?;
            C::poll(PollRequest { op: &op, config: &config, params: &params, cursor: cursor.as_deref() })
        };
        run().map(batch_to_wit).map_err(error_to_wit)
    }

    /// `invoke`.
    pub fn invoke<C: Connector>(
        op: String,
        config: String,
        input: String,
        idempotency_key: String,
    ) -> Result<wit::ActionOutput, wit::Error> {
        let run = || {
            let config = parse_json(&config, "config", Error::config)?;
            let input = parse_json(&input, "input", Error::invalid_input)?;
            C::invoke(InvokeRequest {
                op: &op,
                config: &config,
                input: &input,
                idempotency_key: &idempotency_key,
            })
        };
        run().map(output_to_wit).map_err(error_to_wit)
    }

    /// `verify-webhook`.
    pub fn verify_webhook<C: Connector>(
        config: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<wit::WebhookResult, wit::Error> {
        let run = || {
            let config = parse_json(&config, "config", Error::config)?;
            C::verify_webhook(WebhookRequest { config: &config, headers: &headers, body: &body })
        };
        run().map(webhook_to_wit).map_err(error_to_wit)
    }

    fn parse_json(text: &str, what: &str, class: fn(String) -> Error) -> Result<Value, Error> {
        serde_json::from_str(text).map_err(|e| class(format!("{what} is not valid JSON: {e}")))
    }

    fn json_text(value: &Value) -> String {
        // Serializing a `Value` into a `String` cannot fail: its map keys are strings.
        serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
    }

    pub(crate) fn error_to_wit(e: Error) -> wit::Error {
        match e {
            Error::Config { message } => wit_types::Error::Config(message),
            Error::Unauthorized { message } => wit_types::Error::Unauthorized(message),
            Error::RateLimited { message, retry_after_ms } => {
                wit_types::Error::RateLimited(wit_types::RateLimit { message, retry_after_ms })
            }
            Error::InvalidInput { message } => wit_types::Error::InvalidInput(message),
            Error::Transient { message } => wit_types::Error::Transient(message),
            Error::Permanent { message } => wit_types::Error::Permanent(message),
        }
    }

    fn info_to_wit(info: Info) -> wit::Info {
        wit::Info {
            id: info.id,
            version: info.version,
            title: info.title,
            description: info.description,
            config_schema: json_text(&info.config_schema),
            operations: info
                .operations
                .into_iter()
                .map(|op| wit::Operation {
                    name: op.name,
                    kind: match op.kind {
                        OperationKind::Trigger => wit::OperationKind::Trigger,
                        OperationKind::Action => wit::OperationKind::Action,
                    },
                    description: op.description,
                    params_schema: op.params_schema.as_ref().map(json_text),
                    input_schema: op.input_schema.as_ref().map(json_text),
                    output_schema: op.output_schema.as_ref().map(json_text),
                })
                .collect(),
            hosts: info.hosts,
            webhook: info.webhook,
        }
    }

    fn record_to_wit(record: SourceRecord) -> wit::SourceRecord {
        wit::SourceRecord { id: record.id, data: json_text(&record.data) }
    }

    fn batch_to_wit(batch: Batch) -> wit::Batch {
        wit::Batch {
            records: batch.records.into_iter().map(record_to_wit).collect(),
            next_cursor: batch.next_cursor,
            more: batch.more,
        }
    }

    fn output_to_wit(output: ActionOutput) -> wit::ActionOutput {
        wit::ActionOutput {
            output: json_text(&output.output),
            items: output.items.map(|items| {
                items.into_iter().map(|item| item.map(|v| json_text(&v)).map_err(error_to_wit)).collect()
            }),
        }
    }

    fn webhook_to_wit(result: WebhookResult) -> wit::WebhookResult {
        wit::WebhookResult {
            records: result.records.into_iter().map(record_to_wit).collect(),
            reply: result.reply.map(|r| wit::WebhookReply {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    mod tests {
        use super::*;
        use crate::{Operation, WebhookReply, json, unknown_operation};

        struct Sample;

        impl Connector for Sample {
            fn describe() -> Info {
                Info {
                    id: "sample".into(),
                    version: "1.2.3".into(),
                    title: "Sample".into(),
                    description: "d".into(),
                    config_schema: json!({"type": "object"}),
                    operations: vec![Operation {
                        name: "items".into(),
                        kind: OperationKind::Trigger,
                        description: "items".into(),
                        params_schema: Some(json!({"type": "object"})),
                        input_schema: None,
                        output_schema: Some(json!(true)),
                    }],
                    hosts: vec!["{config.base_url}".into()],
                    webhook: true,
                }
            }
            fn validate_config(config: &Value) -> crate::Result<()> {
                if config.get("ok") == Some(&json!(true)) {
                    Ok(())
                } else {
                    Err(Error::config("ok must be true"))
                }
            }
            fn poll(req: PollRequest<'_>) -> crate::Result<Batch> {
                Ok(Batch {
                    records: vec![SourceRecord { id: Some("1".into()), data: req.params.clone() }],
                    next_cursor: req.cursor.map(|c| format!("{c}+")),
                    more: true,
                })
            }
            fn invoke(req: InvokeRequest<'_>) -> crate::Result<ActionOutput> {
                match req.op {
                    "bulk" => Ok(ActionOutput {
                        output: json!({"key": req.idempotency_key}),
                        items: Some(vec![Ok(json!(1)), Err(Error::rate_limited("slow down", Some(5)))]),
                    }),
                    other => Err(unknown_operation(other)),
                }
            }
            fn verify_webhook(req: WebhookRequest<'_>) -> crate::Result<WebhookResult> {
                Ok(WebhookResult {
                    records: vec![SourceRecord { id: None, data: json!({"len": req.body.len()}) }],
                    reply: Some(WebhookReply {
                        status: 202,
                        headers: req.headers.to_vec(),
                        body: b"ok".to_vec(),
                    }),
                })
            }
        }

        crate::export_connector!(Sample);

        fn class(e: &wit::Error) -> (&'static str, String) {
            match e {
                wit_types::Error::Config(m) => ("config", m.clone()),
                wit_types::Error::Unauthorized(m) => ("unauthorized", m.clone()),
                wit_types::Error::RateLimited(r) => ("rate-limited", r.message.clone()),
                wit_types::Error::InvalidInput(m) => ("invalid-input", m.clone()),
                wit_types::Error::Transient(m) => ("transient", m.clone()),
                wit_types::Error::Permanent(m) => ("permanent", m.clone()),
            }
        }

        #[test]
        fn describe_serializes_schemas() {
            let info = describe::<Sample>();
            assert_eq!(info.config_schema, r#"{"type":"object"}"#);
            assert_eq!(info.operations[0].output_schema.as_deref(), Some("true"));
            assert_eq!(info.operations[0].input_schema, None);
            assert!(matches!(info.operations[0].kind, wit::OperationKind::Trigger));
            assert!(info.webhook);
        }

        #[test]
        fn broken_host_json_is_classified_not_a_panic() {
            let e = validate_config::<Sample>("{".into()).unwrap_err();
            assert_eq!(class(&e).0, "config");
            assert!(class(&e).1.starts_with("config is not valid JSON"));
            let e = poll::<Sample>("items".into(), "{}".into(), "[".into(), None).unwrap_err();
            assert_eq!(class(&e).0, "config");
            let e = invoke::<Sample>("bulk".into(), "{}".into(), "nope".into(), "k".into()).unwrap_err();
            assert_eq!(class(&e).0, "invalid-input");
            let e = verify_webhook::<Sample>("".into(), vec![], vec![]).unwrap_err();
            assert_eq!(class(&e).0, "config");
        }

        #[test]
        fn results_convert_to_wit() {
            assert!(validate_config::<Sample>(r#"{"ok": true}"#.into()).is_ok());
            let e = validate_config::<Sample>("{}".into()).unwrap_err();
            assert_eq!(class(&e), ("config", "ok must be true".into()));

            let batch = poll::<Sample>("items".into(), "{}".into(), r#"{"a": [1]}"#.into(), Some("c".into()))
                .unwrap();
            assert_eq!(batch.records[0].id.as_deref(), Some("1"));
            assert_eq!(batch.records[0].data, r#"{"a":[1]}"#);
            assert_eq!(batch.next_cursor.as_deref(), Some("c+"));
            assert!(batch.more);

            let out = invoke::<Sample>("bulk".into(), "{}".into(), "{}".into(), "key-1".into()).unwrap();
            assert_eq!(out.output, r#"{"key":"key-1"}"#);
            let items = out.items.unwrap();
            assert_eq!(items[0].as_deref().ok(), Some("1"));
            match &items[1] {
                Err(wit_types::Error::RateLimited(r)) => assert_eq!(r.retry_after_ms, Some(5)),
                other => panic!("unexpected {other:?}"),
            }
            let e = invoke::<Sample>("other".into(), "{}".into(), "{}".into(), "k".into()).unwrap_err();
            assert_eq!(class(&e), ("permanent", "unknown operation \"other\"".into()));

            let hook =
                verify_webhook::<Sample>("{}".into(), vec![("a".into(), "b".into())], b"body".to_vec())
                    .unwrap();
            assert_eq!(hook.records[0].data, r#"{"len":4}"#);
            let reply = hook.reply.unwrap();
            assert_eq!((reply.status, reply.body.as_slice()), (202, b"ok".as_slice()));
        }
    }
}
