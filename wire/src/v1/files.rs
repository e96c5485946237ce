//! Attachments: what `POST /api/v1/files` and `GET /api/v1/files/:id/meta` return. A message of
//! type `file` carries the file's id in its content.

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;

/// The path a file is served from, relative to the node: `/api/v1/files/<id>`.
pub fn file_url(id: Snowflake) -> String {
    format!("/api/v1/files/{id}")
}

/// An uploaded file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    /// The file's id (a snowflake).
    pub id: Snowflake,
    /// The file name: the multipart part's filename or the upload's `?name=`, sanitised.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type sniffed from the bytes (never the client's claim).
    pub mime_type: String,
    /// Where to download it: [`file_url`] of the id.
    pub url: String,
    /// The room whose members may read it.
    pub room_id: Snowflake,
    /// Who uploaded it.
    pub uploaded_by: Snowflake,
    /// Upload time, RFC 3339.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_has_the_documented_shape() {
        let view = FileView {
            id: Snowflake(7),
            name: "a.png".into(),
            size: 3,
            mime_type: "image/png".into(),
            url: file_url(Snowflake(7)),
            room_id: Snowflake(1),
            uploaded_by: Snowflake(2),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&view).expect("json"),
            serde_json::json!({
                "id": "7", "name": "a.png", "size": 3, "mimeType": "image/png",
                "url": "/api/v1/files/7", "roomId": "1", "uploadedBy": "2",
                "createdAt": "2026-01-01T00:00:00.000Z"
            })
        );
    }
}
