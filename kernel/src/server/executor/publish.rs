//! Engine events and footers as iopub messages, under the right parent. Builds messages
//! only; what to publish and when is decided by the caller.

use super::RecentParents;
use crate::engine::{CellEvent, EngineEvent};
use crate::server::{wire, Kernel};
use crate::telemetry::render::{self, Mode};
use crate::telemetry::CellTelemetry;
use jupyter_protocol::{
    ClearOutput, DisplayData, JupyterMessage, JupyterMessageContent, Media, StreamContent,
    Transient, UpdateDisplayData,
};
use serde_json::{Map, Value};

/// MIME type of the footer's machine-readable copy.
pub const TELEMETRY_MIME: &str = "application/vnd.rustmeter.telemetry+json";

pub(super) fn publish_background(kernel: &Kernel, recent: &RecentParents, event: EngineEvent) {
    let Some(parent) = recent.get(event.cell) else {
        return;
    };
    match event.event {
        CellEvent::Stream { .. } | CellEvent::Display { .. } | CellEvent::ClearOutput { .. } => {
            publish_output(kernel, parent, event.event)
        }
        _ => {}
    }
}

pub(super) fn publish_output(kernel: &Kernel, parent: &JupyterMessage, event: CellEvent) {
    let content: JupyterMessageContent = match event {
        CellEvent::Stream { stderr, text } => {
            if stderr {
                StreamContent::stderr(&text).into()
            } else {
                StreamContent::stdout(&text).into()
            }
        }
        CellEvent::Display {
            data,
            metadata,
            display_id,
            update,
        } => match (display_id, update) {
            (Some(id), true) => UpdateDisplayData {
                data: media(data),
                metadata,
                transient: Transient {
                    display_id: Some(id),
                },
            }
            .into(),
            (id, _) => DisplayData {
                data: media(data),
                metadata,
                transient: id.map(|id| Transient {
                    display_id: Some(id),
                }),
            }
            .into(),
        },
        CellEvent::ClearOutput { wait } => ClearOutput { wait }.into(),
        _ => return,
    };
    kernel.iopub.send(wire::child_of(content, parent));
}

pub(super) fn media(data: Map<String, Value>) -> Media {
    // Round-trip through the protocol crate's own parser so known types are typed.
    serde_json::from_value(Value::Object(data)).unwrap_or_default()
}

/// The final footer: the line, the HTML with charts, and the JSON.
pub fn footer(telemetry: &CellTelemetry, mode: Mode) -> DisplayData {
    let mut data = Map::new();
    data.insert(
        "text/plain".into(),
        Value::String(render::text_line(telemetry)),
    );
    data.insert(
        "text/html".into(),
        Value::String(render::html(telemetry, mode)),
    );
    data.insert(TELEMETRY_MIME.into(), telemetry.to_json());
    let mut metadata = Map::new();
    metadata.insert("rustmeter".into(), serde_json::json!({ "footer": true }));
    DisplayData {
        data: media(data),
        metadata,
        transient: None,
    }
}

pub(super) fn publish_live(
    kernel: &Kernel,
    parent: &JupyterMessage,
    id: &str,
    line: String,
    update: bool,
) {
    let mut data = Map::new();
    data.insert("text/plain".into(), Value::String(line));
    let transient = Transient {
        display_id: Some(id.to_string()),
    };
    let content: JupyterMessageContent = if update {
        UpdateDisplayData {
            data: media(data),
            metadata: Map::new(),
            transient,
        }
        .into()
    } else {
        DisplayData {
            data: media(data),
            metadata: Map::new(),
            transient: Some(transient),
        }
        .into()
    };
    kernel.iopub.send(wire::child_of(content, parent));
}
