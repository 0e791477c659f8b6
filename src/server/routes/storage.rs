//! `storageConfiguration`: Bedrock's RDS option made a pgvector table, and the store of a
//! knowledge base reported back in Bedrock's shape.

use quarry_core::config::{PgFieldMapping, RdsConfig, VectorStoreConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageConfiguration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    rds_configuration: Option<RdsConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RdsConfiguration {
    resource_arn: String,
    credentials_secret_arn: String,
    database_name: String,
    table_name: String,
    field_mapping: FieldMapping,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FieldMapping {
    primary_key_field: String,
    vector_field: String,
    text_field: String,
    metadata_field: String,
    #[serde(default)]
    custom_metadata_field: Option<String>,
}

const AT: &str = "storageConfiguration.rdsConfiguration";

fn identifier(value: &str, at: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "{at} {value:?} must be a PostgreSQL identifier ([A-Za-z_][A-Za-z0-9_]{{0,62}})"
        )))
    }
}

/// The store a CreateKnowledgeBase's `storageConfiguration` asks for.
pub fn vector_store(rds: &RdsConfig, s: StorageConfiguration) -> ApiResult<VectorStoreConfig> {
    if s.kind != "RDS" {
        return Err(ApiError::Validation(format!(
            "storageConfiguration.type {}: Quarry supports RDS (PostgreSQL with pgvector); leave storageConfiguration out for the default store",
            s.kind
        )));
    }
    let c = s
        .rds_configuration
        .ok_or_else(|| ApiError::Validation(format!("{AT} is required for type RDS")))?;
    if c.field_mapping.custom_metadata_field.is_some() {
        return Err(ApiError::Validation(format!(
            "{AT}.fieldMapping.customMetadataField: Quarry does not support this member (metadata is kept in metadataField)"
        )));
    }
    let server = rds.clusters.get(&c.resource_arn).ok_or_else(|| {
        ApiError::Validation(format!(
            "{AT}.resourceArn {}: no such cluster in [rds] clusters (known: {:?})",
            c.resource_arn,
            rds.clusters.keys().collect::<Vec<_>>()
        ))
    })?;
    let password_env = rds.secrets.get(&c.credentials_secret_arn).ok_or_else(|| {
        ApiError::Validation(format!(
            "{AT}.credentialsSecretArn {}: no such secret in [rds] secrets",
            c.credentials_secret_arn
        ))
    })?;
    identifier(&c.database_name, &format!("{AT}.databaseName"))?;
    for (i, part) in c.table_name.split('.').enumerate() {
        if i > 1 {
            return Err(ApiError::Validation(format!(
                "{AT}.tableName {:?} must be `table` or `schema.table`",
                c.table_name
            )));
        }
        identifier(part, &format!("{AT}.tableName"))?;
    }
    let m = c.field_mapping;
    for (name, value) in [
        ("primaryKeyField", &m.primary_key_field),
        ("vectorField", &m.vector_field),
        ("textField", &m.text_field),
        ("metadataField", &m.metadata_field),
    ] {
        identifier(value, &format!("{AT}.fieldMapping.{name}"))?;
    }
    Ok(VectorStoreConfig::Pgvector {
        url: format!("{}/{}", server.trim_end_matches('/'), c.database_name),
        table: c.table_name,
        password_env: Some(password_env.clone()),
        fields: PgFieldMapping {
            primary_key: m.primary_key_field,
            vector: m.vector_field,
            text: m.text_field,
            metadata: m.metadata_field,
        },
    })
}

/// GetKnowledgeBase's `storageConfiguration` for a store: RDS in Bedrock's shape for pgvector
/// (the ARNs are the `[rds]` names that lead to it, or made up from the URL), Quarry's own
/// type names for the others.
pub fn reported(store: &VectorStoreConfig, rds: &RdsConfig, account: &str) -> Value {
    match store {
        VectorStoreConfig::Hnsw { .. } => json!({ "type": "QUARRY_HNSW" }),
        VectorStoreConfig::Qdrant { collection, .. } => {
            json!({ "type": "QUARRY_QDRANT", "quarryQdrantConfiguration": { "collectionName": collection } })
        }
        VectorStoreConfig::Pgvector {
            url,
            table,
            password_env,
            fields,
        } => {
            let (server, database) = url.rsplit_once('/').unwrap_or((url.as_str(), ""));
            let resource_arn = rds
                .clusters
                .iter()
                .find(|(_, u)| u.trim_end_matches('/') == server)
                .map(|(arn, _)| arn.clone())
                .unwrap_or_else(|| format!("arn:aws:rds:us-east-1:{account}:cluster:quarry"));
            let secret_arn = rds
                .secrets
                .iter()
                .find(|(_, env)| Some(*env) == password_env.as_ref())
                .map(|(arn, _)| arn.clone())
                .unwrap_or_else(|| {
                    format!("arn:aws:secretsmanager:us-east-1:{account}:secret:quarry")
                });
            json!({
                "type": "RDS",
                "rdsConfiguration": {
                    "resourceArn": resource_arn,
                    "credentialsSecretArn": secret_arn,
                    "databaseName": database,
                    "tableName": table,
                    "fieldMapping": {
                        "primaryKeyField": fields.primary_key,
                        "vectorField": fields.vector,
                        "textField": fields.text,
                        "metadataField": fields.metadata,
                    }
                }
            })
        }
    }
}
