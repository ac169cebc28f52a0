//! A class-conditional U-Net following diffusers' `UNet2DModel`: its architecture, its
//! `config.json` keys and its parameter names (`down_blocks.0.resnets.0.conv1.weight`, …),
//! so a diffusers model folder loads as is.
//!
//! Supported: `DownBlock2D` / `AttnDownBlock2D`, `UpBlock2D` / `AttnUpBlock2D`, the
//! attention mid block, positional time embedding (`flip_sin_to_cos`, `freq_shift`),
//! `num_class_embeds` (the class embedding is added to the time embedding; `null`: an
//! unconditional model), `attention_head_dim` (`null`: one head per block),
//! `mid_block_scale_factor`, `attn_norm_num_groups`, `sample_size` as a side or a square
//! `[h, w]`, SiLU, `resnet_time_scale_shift = "default"`. Every other field is refused by
//! name unless it has its default value; unknown fields are refused.
//!
//! Graph inputs: `x` `(in_channels, S, S)`, `time` `(block_out_channels[0])` from
//! [`time_features`], `label` `(num_class_embeds)` (conditional models only).

use std::path::Path;

use serde::Serialize;

use crate::error::ModelError;
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, Stored, ValueId};

/// The subset of diffusers' `UNet2DModel` config we support. [`Config::from_json`] reads
/// a `config.json` field by field: every field is honoured or refused by name, and
/// unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Channels per attention head (`None`: one head per block, as diffusers).
    pub attention_head_dim: Option<usize>,
    /// Number of classes (`None`: an unconditional model, no label input).
    pub num_class_embeds: Option<usize>,
    /// The mid block's ResNets and attention divide their output by this.
    pub mid_block_scale_factor: f64,
    /// GroupNorm groups of the mid block's attention (`None`: `norm_num_groups`).
    pub attn_norm_num_groups: Option<usize>,
    /// Time features as `[cos, sin]` instead of `[sin, cos]`.
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time features.
    pub freq_shift: usize,
    /// Activation (only `"silu"`).
    pub act_fn: String,
    /// Only `"positional"`.
    pub time_embedding_type: String,
    /// Only `"default"`.
    pub resnet_time_scale_shift: String,
    /// Only 1.
    pub downsample_padding: usize,
    /// Whether the mid block has attention.
    pub add_attention: bool,
    /// Always `"UNet2DModel"`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
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
            attention_head_dim: Some(32),
            num_class_embeds: Some(10),
            mid_block_scale_factor: 1.0,
            attn_norm_num_groups: None,
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
        let (text, what) = crate::diffusers_config::read(path.as_ref())?;
        Self::from_json(&text, &what)
    }

    /// Parses the text of a `config.json` field by field; `what` names it in errors.
    /// `dropout` and `num_train_timesteps` cannot change an inference and are accepted
    /// with any value; `center_input_sample`, `class_embed_type`, `time_embedding_dim`
    /// and the down/upsampler types only with their default; unknown fields are refused.
    /// The result is validated.
    pub fn from_json(text: &str, what: &str) -> Result<Self, ModelError> {
        use crate::diffusers_config::Fields;
        use serde_json::json;
        let mut f = Fields::parse(text, what)?;
        let sample_size = f.square_side("sample_size")?;
        let cfg = Self {
            sample_size,
            in_channels: f.usize_or("in_channels", 3)?,
            out_channels: f.usize_or("out_channels", 3)?,
            block_out_channels: f.usizes("block_out_channels")?,
            down_block_types: f.strings("down_block_types")?,
            up_block_types: f.strings("up_block_types")?,
            layers_per_block: f.usize_or("layers_per_block", 2)?,
            norm_num_groups: f.usize_or("norm_num_groups", 32)?,
            norm_eps: f.f64_or("norm_eps", 1e-5)?,
            attention_head_dim: f.opt_usize("attention_head_dim")?,
            num_class_embeds: f.opt_usize("num_class_embeds")?,
            mid_block_scale_factor: f.f64_or("mid_block_scale_factor", 1.0)?,
            attn_norm_num_groups: f.opt_usize("attn_norm_num_groups")?,
            flip_sin_to_cos: f.bool_or("flip_sin_to_cos", true)?,
            freq_shift: f.usize_or("freq_shift", 0)?,
            act_fn: f.str_or("act_fn", "silu")?,
            time_embedding_type: f.str_or("time_embedding_type", "positional")?,
            resnet_time_scale_shift: f.str_or("resnet_time_scale_shift", "default")?,
            downsample_padding: f.usize_or("downsample_padding", 1)?,
            add_attention: f.bool_or("add_attention", true)?,
            class_name: class_name(),
        };
        f.only(
            "center_input_sample",
            json!(false),
            "the input is used as given; centre it before sampling",
        )?;
        f.only("downsample_type", json!("conv"), "only conv")?;
        f.only("upsample_type", json!("conv"), "only conv")?;
        f.absent("class_embed_type", "the class embedding is a table")?;
        f.absent(
            "time_embedding_dim",
            "the time embedding is 4 × block_out_channels[0]",
        )?;
        f.no_effect("dropout");
        f.no_effect("num_train_timesteps");
        f.finish("UNet2DModel")?;
        cfg.validate()?;
        Ok(cfg)
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
            (
                "num_class_embeds",
                self.num_class_embeds.unwrap_or(1),
                MAX_CLASSES,
            ),
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
            ("attention_head_dim", self.attention_head_dim.unwrap_or(1)),
            (
                "attn_norm_num_groups",
                self.attn_norm_num_groups.unwrap_or(1),
            ),
            ("num_class_embeds", self.num_class_embeds.unwrap_or(1)),
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
        if self.layers_per_block == 0 {
            return bad("layers_per_block must be positive".into());
        }
        if !(self.mid_block_scale_factor.is_finite() && self.mid_block_scale_factor > 0.0) {
            return bad("mid_block_scale_factor must be positive".into());
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|&&c| !c.is_multiple_of(self.norm_num_groups))
        {
            return bad(format!(
                "norm_num_groups {} does not divide {c} channels",
                self.norm_num_groups
            ));
        }
        let top = self.block_out_channels[levels - 1];
        if let Some(g) = self.attn_norm_num_groups
            && !top.is_multiple_of(g)
        {
            return bad(format!(
                "attn_norm_num_groups {g} does not divide {top} channels"
            ));
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

/// diffusers' `Attention` as `UNet2DModel` uses it: GroupNorm of `groups`, one head per
/// `attention_head_dim` channels (one head when it is `None`), the residual, and the
/// output divided by `rescale`.
fn attention(
    g: &mut GraphBuilder,
    p: &str,
    x: ValueId,
    ctx: &Ctx,
    groups: usize,
    rescale: f64,
) -> Result<ValueId, ModelError> {
    let c = g.shape(x)[0];
    let heads = (c / ctx.cfg.attention_head_dim.unwrap_or(c)).max(1);
    let h = g.group_norm(&format!("{p}.group_norm"), x, groups, ctx.cfg.norm_eps)?;
    let q = g.linear_1x1(&format!("{p}.to_q"), h, c, true)?;
    let k = g.linear_1x1(&format!("{p}.to_k"), h, c, true)?;
    let v = g.linear_1x1(&format!("{p}.to_v"), h, c, true)?;
    let a = g.attention(&format!("{p}.attention"), q, k, v, heads)?;
    let o = g.linear_1x1(&format!("{p}.to_out.0"), a, c, true)?;
    let out = g.add(&format!("{p}.residual"), o, x)?;
    Ok(rescaled(g, p, out, rescale))
}

/// `x / factor` (nothing when the factor is 1).
fn rescaled(g: &mut GraphBuilder, p: &str, x: ValueId, factor: f64) -> ValueId {
    if factor == 1.0 {
        x
    } else {
        g.scale(&format!("{p}.output_scale"), x, 1.0 / factor)
    }
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
    let label = cfg
        .num_class_embeds
        .map(|classes| g.input("label", vec![classes]));
    let t = g.dense("time_embedding.linear_1", time, temb_dim)?;
    let t = g.act("time_embedding.act", t, Activation::Silu);
    let t = g.dense("time_embedding.linear_2", t, temb_dim)?;
    let emb = match label {
        Some(label) => {
            let e = g.dense_named(
                "class_embedding",
                label,
                temb_dim,
                "weight",
                Stored::Transposed,
                false,
            )?;
            g.add("emb", t, e)?
        }
        None => t,
    };
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
                let p = format!("down_blocks.{i}.attentions.{j}");
                h = attention(&mut g, &p, h, &ctx, cfg.norm_num_groups, 1.0)?;
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
    let scale = cfg.mid_block_scale_factor;
    h = resnet(&mut g, "mid_block.resnets.0", h, top, &ctx)?;
    h = rescaled(&mut g, "mid_block.resnets.0", h, scale);
    if cfg.add_attention {
        let groups = cfg.attn_norm_num_groups.unwrap_or(cfg.norm_num_groups);
        h = attention(&mut g, "mid_block.attentions.0", h, &ctx, groups, scale)?;
    }
    h = resnet(&mut g, "mid_block.resnets.1", h, top, &ctx)?;
    h = rescaled(&mut g, "mid_block.resnets.1", h, scale);
    for (i, kind) in cfg.up_block_types.iter().enumerate() {
        let cout = ch[levels - 1 - i];
        for j in 0..=cfg.layers_per_block {
            let skip = skips.pop().ok_or_else(|| {
                ModelError::Config("up blocks consume more skips than exist".into())
            })?;
            h = g.concat(&format!("up_blocks.{i}.concat.{j}"), &[h, skip])?;
            h = resnet(&mut g, &format!("up_blocks.{i}.resnets.{j}"), h, cout, &ctx)?;
            if kind == "AttnUpBlock2D" {
                let p = format!("up_blocks.{i}.attentions.{j}");
                h = attention(&mut g, &p, h, &ctx, cfg.norm_num_groups, 1.0)?;
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
