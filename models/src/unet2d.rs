//! A class-conditional U-Net following diffusers' `UNet2DModel`: its architecture, its
//! `config.json` keys and its parameter names (`down_blocks.0.resnets.0.conv1.weight`, …),
//! so a diffusers model folder loads as is.
//!
//! Supported: `DownBlock2D` / `AttnDownBlock2D`, `UpBlock2D` / `AttnUpBlock2D`, the
//! attention mid block, positional time embedding (`flip_sin_to_cos`, `freq_shift`),
//! `num_class_embeds` (the class embedding is added to the time embedding), SiLU,
//! `resnet_time_scale_shift = "default"`. Anything else is a typed configuration error.
//!
//! Graph inputs: `x` `(in_channels, S, S)`, `time` `(block_out_channels[0])` from
//! [`time_features`], `label` `(num_class_embeds)`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, Stored, ValueId};

/// The subset of diffusers' `UNet2DModel` config we support (unknown keys are ignored,
/// unsupported values rejected by [`graph`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Image side.
    pub sample_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Channels per resolution level.
    pub block_out_channels: Vec<usize>,
    /// Block type per level, top to bottom.
    pub down_block_types: Vec<String>,
    /// Block type per level, bottom to top.
    pub up_block_types: Vec<String>,
    /// ResNet blocks per down level (up levels have one more).
    pub layers_per_block: usize,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm ε.
    pub norm_eps: f64,
    /// Channels per attention head.
    pub attention_head_dim: usize,
    /// Number of classes.
    pub num_class_embeds: usize,
    /// Time features as `[cos, sin]` instead of `[sin, cos]`.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time features.
    #[serde(default)]
    pub freq_shift: usize,
    /// Activation (only `"silu"`).
    #[serde(default = "silu_name")]
    pub act_fn: String,
    /// Only `"positional"`.
    #[serde(default = "positional")]
    pub time_embedding_type: String,
    /// Only `"default"`.
    #[serde(default = "default_name")]
    pub resnet_time_scale_shift: String,
    /// Only 1.
    #[serde(default = "one")]
    pub downsample_padding: usize,
    /// Whether the mid block has attention.
    #[serde(default = "yes")]
    pub add_attention: bool,
    /// Always `"UNet2DModel"`.
    #[serde(rename = "_class_name", default = "class_name")]
    pub class_name: String,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn silu_name() -> String {
    "silu".into()
}
fn positional() -> String {
    "positional".into()
}
fn default_name() -> String {
    "default".into()
}
fn class_name() -> String {
    "UNet2DModel".into()
}

/// Most resolution levels a config may ask for (SD-1.5 has 4).
pub const MAX_LEVELS: usize = 8;
/// Most ResNet blocks per level (SD-1.5 has 2).
pub const MAX_LAYERS_PER_BLOCK: usize = 16;
/// Largest image side.
pub const MAX_SAMPLE_SIZE: usize = 1024;
/// Most channels of any level, input or output (SD-1.5's widest is 1,280).
pub const MAX_CHANNELS: usize = 8192;
/// Most classes of the label embedding.
pub const MAX_CLASSES: usize = 100_000;

impl Config {
    /// The project's `mnist` model: 28×28, 10 classes, channels (16, 32, 64), one ResNet
    /// per level, attention only at 7×7 and in the mid block (≈ 0.6 M parameters).
    pub fn mnist() -> Self {
        Self {
            sample_size: 28,
            in_channels: 1,
            out_channels: 1,
            block_out_channels: vec![16, 32, 64],
            down_block_types: vec![
                "DownBlock2D".into(),
                "DownBlock2D".into(),
                "AttnDownBlock2D".into(),
            ],
            up_block_types: vec![
                "AttnUpBlock2D".into(),
                "UpBlock2D".into(),
                "UpBlock2D".into(),
            ],
            layers_per_block: 1,
            norm_num_groups: 8,
            norm_eps: 1e-5,
            attention_head_dim: 32,
            num_class_embeds: 10,
            flip_sin_to_cos: true,
            freq_shift: 0,
            act_fn: silu_name(),
            time_embedding_type: positional(),
            resnet_time_scale_shift: default_name(),
            downsample_padding: 1,
            add_attention: true,
            class_name: class_name(),
        }
    }

    /// Reads `config.json` (a file, or a diffusers folder containing it).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| ModelError::io(&file, e))?;
        Self::from_json(&text, &file.display().to_string())
    }

    /// Parses the text of a `config.json`; `what` names it in errors.
    pub fn from_json(text: &str, what: &str) -> Result<Self, ModelError> {
        serde_json::from_str(text).map_err(|e| ModelError::format(what, e.to_string()))
    }

    /// Writes `config.json` into `dir`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
        let file = dir.as_ref().join("config.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ModelError::format("config", e.to_string()))?;
        std::fs::write(&file, text + "\n").map_err(|e| ModelError::io(&file, e))
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        // Bounds first, so that the graph built from an accepted config stays small
        // (every loop below and in `graph` runs at most levels × (layers + 1) times).
        let limits: [(&str, usize, usize); 6] = [
            (
                "block_out_channels (levels)",
                self.block_out_channels.len(),
                MAX_LEVELS,
            ),
            (
                "layers_per_block",
                self.layers_per_block,
                MAX_LAYERS_PER_BLOCK,
            ),
            ("sample_size", self.sample_size, MAX_SAMPLE_SIZE),
            ("in_channels", self.in_channels, MAX_CHANNELS),
            ("out_channels", self.out_channels, MAX_CHANNELS),
            ("num_class_embeds", self.num_class_embeds, MAX_CLASSES),
        ];
        for (field, value, max) in limits {
            if value > max {
                return bad(format!("{field} is {value}, at most {max} is supported"));
            }
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|&&c| c == 0 || c > MAX_CHANNELS)
        {
            return bad(format!(
                "block_out_channels has {c}: each must be 1 to {MAX_CHANNELS}"
            ));
        }
        for (field, value) in [
            ("sample_size", self.sample_size),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("norm_num_groups", self.norm_num_groups),
            ("attention_head_dim", self.attention_head_dim),
        ] {
            if value == 0 {
                return bad(format!("{field} must be positive"));
            }
        }
        let levels = self.block_out_channels.len();
        if levels == 0
            || self.down_block_types.len() != levels
            || self.up_block_types.len() != levels
        {
            return bad(
                "block_out_channels, down_block_types and up_block_types need one entry per level"
                    .into(),
            );
        }
        if self.act_fn != "silu" {
            return bad(format!("act_fn `{}` (only silu)", self.act_fn));
        }
        if self.time_embedding_type != "positional" || self.resnet_time_scale_shift != "default" {
            return bad("only positional time embedding with default scale-shift".into());
        }
        if self.downsample_padding != 1 {
            return bad("downsample_padding must be 1".into());
        }
        if self.num_class_embeds == 0 || self.layers_per_block == 0 {
            return bad("num_class_embeds and layers_per_block must be positive".into());
        }
        if !self.block_out_channels[0].is_multiple_of(2)
            || self.block_out_channels[0] <= 2 * self.freq_shift
        {
            return bad("block_out_channels[0] must be even and exceed 2·freq_shift".into());
        }
        if !self.sample_size.is_multiple_of(1 << (levels - 1)) {
            return bad(format!(
                "sample_size {} does not halve {} times",
                self.sample_size,
                levels - 1
            ));
        }
        for t in &self.down_block_types {
            if t != "DownBlock2D" && t != "AttnDownBlock2D" {
                return bad(format!("down block type `{t}`"));
            }
        }
        for t in &self.up_block_types {
            if t != "UpBlock2D" && t != "AttnUpBlock2D" {
                return bad(format!("up block type `{t}`"));
            }
        }
        Ok(())
    }
}

/// diffusers' `Timesteps` features of `t`, `block_out_channels[0]` values.
pub fn time_features(c: &Config, t: f64) -> Vec<f64> {
    sinusoidal(c.block_out_channels[0], t, c.flip_sin_to_cos, c.freq_shift)
}

/// diffusers' `Timesteps(dim, flip_sin_to_cos, freq_shift)` of `t`: `dim/2` frequencies
/// `10000^(−i/(dim/2 − freq_shift))`, sines then cosines (or the other way round).
pub fn sinusoidal(dim: usize, t: f64, flip_sin_to_cos: bool, freq_shift: usize) -> Vec<f64> {
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / (half - freq_shift) as f64).exp())
        .collect();
    let sin = freqs.iter().map(|f| (t * f).sin());
    let cos = freqs.iter().map(|f| (t * f).cos());
    if flip_sin_to_cos {
        cos.chain(sin).collect()
    } else {
        sin.chain(cos).collect()
    }
}

struct Ctx<'a> {
    cfg: &'a Config,
    temb: ValueId,
}

fn resnet(
    g: &mut GraphBuilder,
    p: &str,
    x: ValueId,
    cout: usize,
    ctx: &Ctx,
) -> Result<ValueId, ModelError> {
    resnet_block(
        g,
        p,
        x,
        cout,
        ctx.temb,
        ctx.cfg.norm_num_groups,
        ctx.cfg.norm_eps,
    )
}

/// diffusers' `ResnetBlock2D`: GroupNorm, SiLU, 3×3 conv, plus the projected (already
/// SiLU'd) time embedding `temb`, GroupNorm, SiLU, 3×3 conv, and a 1×1 shortcut when the
/// channels change.
pub(crate) fn resnet_block(
    g: &mut GraphBuilder,
    p: &str,
    x: ValueId,
    cout: usize,
    temb: ValueId,
    groups: usize,
    eps: f64,
) -> Result<ValueId, ModelError> {
    let cin = g.shape(x)[0];
    let h = g.group_norm(&format!("{p}.norm1"), x, groups, eps)?;
    let h = g.act(&format!("{p}.silu1"), h, Activation::Silu);
    let h = g.conv(&format!("{p}.conv1"), h, cout, 3)?;
    let t = g.dense(&format!("{p}.time_emb_proj"), temb, cout)?;
    let h = g.add(&format!("{p}.add_time"), h, t)?;
    let h = g.group_norm(&format!("{p}.norm2"), h, groups, eps)?;
    let h = g.act(&format!("{p}.silu2"), h, Activation::Silu);
    let h = g.conv(&format!("{p}.conv2"), h, cout, 3)?;
    let skip = if cin != cout {
        g.conv(&format!("{p}.conv_shortcut"), x, cout, 1)?
    } else {
        x
    };
    Ok(g.add(&format!("{p}.residual"), skip, h)?)
}

fn attention(g: &mut GraphBuilder, p: &str, x: ValueId, ctx: &Ctx) -> Result<ValueId, ModelError> {
    let c = g.shape(x)[0];
    let heads = (c / ctx.cfg.attention_head_dim).max(1);
    let h = g.group_norm(
        &format!("{p}.group_norm"),
        x,
        ctx.cfg.norm_num_groups,
        ctx.cfg.norm_eps,
    )?;
    let q = g.linear_1x1(&format!("{p}.to_q"), h, c, true)?;
    let k = g.linear_1x1(&format!("{p}.to_k"), h, c, true)?;
    let v = g.linear_1x1(&format!("{p}.to_v"), h, c, true)?;
    let a = g.attention(&format!("{p}.attention"), q, k, v, heads)?;
    let o = g.linear_1x1(&format!("{p}.to_out.0"), a, c, true)?;
    Ok(g.add(&format!("{p}.residual"), o, x)?)
}

/// The U-Net graph of `config`.
///
/// ```
/// let g = cipherdm_models::unet2d::graph(&cipherdm_models::unet2d::Config::mnist()).unwrap();
/// assert!(g.parameter_count() > 300_000);
/// ```
pub fn graph(cfg: &Config) -> Result<Graph, ModelError> {
    cfg.validate()?;
    let mut g = GraphBuilder::new();
    let ch = &cfg.block_out_channels;
    let temb_dim = 4 * ch[0];
    let x = g.input("x", vec![cfg.in_channels, cfg.sample_size, cfg.sample_size]);
    let time = g.input("time", vec![ch[0]]);
    let label = g.input("label", vec![cfg.num_class_embeds]);
    let t = g.dense("time_embedding.linear_1", time, temb_dim)?;
    let t = g.act("time_embedding.act", t, Activation::Silu);
    let t = g.dense("time_embedding.linear_2", t, temb_dim)?;
    let e = g.dense_named(
        "class_embedding",
        label,
        temb_dim,
        "weight",
        Stored::Transposed,
        false,
    )?;
    let emb = g.add("emb", t, e)?;
    // Every ResNet applies silu to the embedding first: the same value, computed once.
    let temb = g.act("emb_silu", emb, Activation::Silu);
    let ctx = Ctx { cfg, temb };

    let mut h = g.conv("conv_in", x, ch[0], 3)?;
    let mut skips = vec![h];
    let levels = ch.len();
    for (i, kind) in cfg.down_block_types.iter().enumerate() {
        for j in 0..cfg.layers_per_block {
            h = resnet(
                &mut g,
                &format!("down_blocks.{i}.resnets.{j}"),
                h,
                ch[i],
                &ctx,
            )?;
            if kind == "AttnDownBlock2D" {
                h = attention(&mut g, &format!("down_blocks.{i}.attentions.{j}"), h, &ctx)?;
            }
            skips.push(h);
        }
        if i + 1 < levels {
            let p = format!("down_blocks.{i}.downsamplers.0.conv");
            h = g.conv_general(&p, h, ch[i], 3, 2, [(1, 1); 2], 1, true)?;
            skips.push(h);
        }
    }
    let top = ch[levels - 1];
    h = resnet(&mut g, "mid_block.resnets.0", h, top, &ctx)?;
    if cfg.add_attention {
        h = attention(&mut g, "mid_block.attentions.0", h, &ctx)?;
    }
    h = resnet(&mut g, "mid_block.resnets.1", h, top, &ctx)?;
    for (i, kind) in cfg.up_block_types.iter().enumerate() {
        let cout = ch[levels - 1 - i];
        for j in 0..=cfg.layers_per_block {
            let skip = skips.pop().ok_or_else(|| {
                ModelError::Config("up blocks consume more skips than exist".into())
            })?;
            h = g.concat(&format!("up_blocks.{i}.concat.{j}"), &[h, skip])?;
            h = resnet(&mut g, &format!("up_blocks.{i}.resnets.{j}"), h, cout, &ctx)?;
            if kind == "AttnUpBlock2D" {
                h = attention(&mut g, &format!("up_blocks.{i}.attentions.{j}"), h, &ctx)?;
            }
        }
        if i + 1 < levels {
            h = g.upsample2(&format!("up_blocks.{i}.upsample"), h)?;
            h = g.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), h, cout, 3)?;
        }
    }
    let h = g.group_norm("conv_norm_out", h, cfg.norm_num_groups, cfg.norm_eps)?;
    let h = g.act("conv_act", h, Activation::Silu);
    let out = g.conv("conv_out", h, cfg.out_channels, 3)?;
    Ok(g.finish(out))
}
