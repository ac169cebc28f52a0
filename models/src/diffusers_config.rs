//! Field-by-field reading of diffusers `config.json` files: every key is either taken by
//! the model's reader (honoured, or refused with an error naming the field and the value)
//! or reported as unknown. Keys starting with `_` are diffusers' metadata
//! (`_diffusers_version`, `_name_or_path`) and are skipped; `_class_name` is checked by
//! the reader.

use serde_json::{Map, Value};

use crate::error::ModelError;

/// The largest `config.json` [`read`] accepts (SD's is under 2 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a `config.json` (a file, or a diffusers folder holding it): its text and the name
/// errors give it.
pub fn read(path: &std::path::Path) -> Result<(String, String), ModelError> {
    let file = if path.is_dir() {
        path.join("config.json")
    } else {
        path.to_path_buf()
    };
    let what = file.display().to_string();
    let len = std::fs::metadata(&file)
        .map_err(|e| ModelError::io(&file, e))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(ModelError::Config(format!(
            "{what}: {len} bytes; a config.json is at most {MAX_CONFIG_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| ModelError::io(&file, e))?;
    Ok((text, what))
}

/// The keys of one config, consumed one by one; [`finish`](Self::finish) refuses what is
/// left.
pub struct Fields {
    map: Map<String, Value>,
    what: String,
}

fn refuse(field: &str, detail: impl std::fmt::Display) -> ModelError {
    ModelError::Config(format!("config field `{field}`: {detail}"))
}

impl Fields {
    /// Parses `text` (a JSON object); `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, ModelError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ModelError::format(what, e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ModelError::format(what, "a config must be a JSON object"));
        };
        Ok(Self {
            map,
            what: what.into(),
        })
    }

    /// Takes `field`, treating JSON `null` as absent.
    fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    /// A whole number, or `default` when absent or null.
    pub fn usize_or(&mut self, field: &str, default: usize) -> Result<usize, ModelError> {
        Ok(self.opt_usize(field)?.unwrap_or(default))
    }

    /// A whole number, `None` when absent or null.
    pub fn opt_usize(&mut self, field: &str) -> Result<Option<usize>, ModelError> {
        self.take(field).map(|v| as_usize(field, &v)).transpose()
    }

    /// A number, or `default` when absent or null.
    pub fn f64_or(&mut self, field: &str, default: f64) -> Result<f64, ModelError> {
        match self.take(field) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| refuse(field, format!("{v} is not a finite number"))),
        }
    }

    /// A boolean, or `default` when absent or null.
    pub fn bool_or(&mut self, field: &str, default: bool) -> Result<bool, ModelError> {
        match self.take(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(v) => Err(refuse(field, format!("{v} is not true or false"))),
        }
    }

    /// A string, or `default` when absent or null.
    pub fn str_or(&mut self, field: &str, default: &str) -> Result<String, ModelError> {
        match self.take(field) {
            None => Ok(default.into()),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(refuse(field, format!("{v} is not a string"))),
        }
    }

    /// A list of strings (required).
    pub fn strings(&mut self, field: &str) -> Result<Vec<String>, ModelError> {
        match self.take(field) {
            Some(Value::Array(a)) if a.len() <= MAX_LIST => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    v => Err(refuse(field, format!("{v} is not a string"))),
                })
                .collect(),
            Some(v) => Err(refuse(
                field,
                format!("{} is not a short list of strings", short(&v)),
            )),
            None => Err(refuse(field, "is required")),
        }
    }

    /// A list of whole numbers (required).
    pub fn usizes(&mut self, field: &str) -> Result<Vec<usize>, ModelError> {
        match self.take(field) {
            Some(Value::Array(a)) if a.len() <= MAX_LIST => {
                a.iter().map(|v| as_usize(field, v)).collect()
            }
            Some(v) => Err(refuse(
                field,
                format!("{} is not a short list of numbers", short(&v)),
            )),
            None => Err(refuse(field, "is required")),
        }
    }

    /// A whole number or a list of them (one per level), `None` when absent or null.
    pub fn opt_usize_per_level(&mut self, field: &str) -> Result<Option<PerLevel>, ModelError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Array(a)) if a.len() <= MAX_LIST => Ok(Some(PerLevel::Each(
                a.iter()
                    .map(|v| as_usize(field, v))
                    .collect::<Result<_, _>>()?,
            ))),
            Some(v) => Ok(Some(PerLevel::All(as_usize(field, &v)?))),
        }
    }

    /// A required image side: a whole number, or a square `[h, w]` pair (`h = w`).
    pub fn square_side(&mut self, field: &str) -> Result<usize, ModelError> {
        match self.opt_usize_per_level(field)? {
            None => Err(refuse(field, "is required")),
            Some(PerLevel::All(s)) => Ok(s),
            Some(PerLevel::Each(v)) => match v[..] {
                [h, w] if h == w => Ok(h),
                _ => Err(refuse(
                    field,
                    format!(
                        "{v:?} (a side, or [h, w] with h = w: non-square inputs are not supported)"
                    ),
                )),
            },
        }
    }

    /// Requires `field` to be absent, null or `supported` (JSON equality); names the
    /// field and the value otherwise.
    pub fn only(&mut self, field: &str, supported: Value, why: &str) -> Result<(), ModelError> {
        match self.take(field) {
            None => Ok(()),
            Some(v) if same(&v, &supported) => Ok(()),
            Some(v) => Err(refuse(
                field,
                format!("{} is not supported ({why})", short(&v)),
            )),
        }
    }

    /// Requires `field` to be absent or null.
    pub fn absent(&mut self, field: &str, why: &str) -> Result<(), ModelError> {
        match self.take(field) {
            None => Ok(()),
            Some(v) => Err(refuse(
                field,
                format!("{} is not supported ({why})", short(&v)),
            )),
        }
    }

    /// Takes a field whose value cannot change an inference result (e.g. `dropout`,
    /// `num_train_timesteps`); any value is accepted.
    pub fn no_effect(&mut self, field: &str) {
        self.map.remove(field);
    }

    /// Checks `_class_name` (when present) and refuses every key not taken.
    pub fn finish(mut self, class: &str) -> Result<(), ModelError> {
        if let Some(v) = self.map.remove("_class_name")
            && v != Value::String(class.into())
        {
            return Err(refuse(
                "_class_name",
                format!("{} is not `{class}`", short(&v)),
            ));
        }
        let unknown: Vec<&String> = self.map.keys().filter(|k| !k.starts_with('_')).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let list: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
            Err(ModelError::Config(format!(
                "{}: unknown config field{} {} for {class}",
                self.what,
                if list.len() > 1 { "s" } else { "" },
                list.join(", ")
            )))
        }
    }
}

/// Longest list a config field may hold (per-level lists have a handful of entries).
const MAX_LIST: usize = 64;

/// A value given once for every level, or per level.
#[derive(Clone, Debug, PartialEq)]
pub enum PerLevel {
    /// The same for every level.
    All(usize),
    /// One per level.
    Each(Vec<usize>),
}

impl PerLevel {
    /// The values for `levels` levels; `field` names the config field in errors.
    pub fn expand(&self, levels: usize, field: &str) -> Result<Vec<usize>, ModelError> {
        match self {
            PerLevel::All(v) => Ok(vec![*v; levels]),
            PerLevel::Each(v) if v.len() == levels => Ok(v.clone()),
            PerLevel::Each(v) => Err(refuse(
                field,
                format!("has {} entries for {levels} levels", v.len()),
            )),
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn as_usize(field: &str, v: &Value) -> Result<usize, ModelError> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| refuse(field, format!("{} is not a whole number", short(v))))
}

/// A value shortened for an error message.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// The `_class_name` of a diffusers config (`UNet2DModel` when absent, as the project's
/// own older configs).
pub fn class_name(text: &str, what: &str) -> Result<String, ModelError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ModelError::format(what, e.to_string()))?;
    match value.get("_class_name") {
        None | Some(Value::Null) => Ok("UNet2DModel".into()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(refuse(
            "_class_name",
            format!("{} is not a string", short(v)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_refuses_an_oversized_config_and_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("cipherdm-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("config.json");
        std::fs::write(&big, vec![b' '; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = read(&dir).unwrap_err();
        assert!(
            matches!(err, ModelError::Config(ref m) if m.contains("at most")),
            "{err}"
        );
        std::fs::remove_file(&big).unwrap();
        assert!(matches!(read(&dir).unwrap_err(), ModelError::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn square_side_takes_a_side_or_a_square_pair_only() {
        let mut f = Fields::parse(r#"{"a": 64, "b": [32, 32], "c": [32, 16]}"#, "t").unwrap();
        assert_eq!(f.square_side("a").unwrap(), 64);
        assert_eq!(f.square_side("b").unwrap(), 32);
        assert!(f.square_side("c").is_err());
        assert!(f.square_side("d").is_err());
    }
}
