//! diffusers' `UNet2DConditionModel` (Stable Diffusion's U-Net): its `config.json`, read
//! field by field ([`Config::from_json`]), and its graph with diffusers' parameter names,
//! so a diffusers `unet` folder (config.json + `diffusion_pytorch_model.safetensors`)
//! loads as is.
//!
//! Supported: `CrossAttnDownBlock2D` / `DownBlock2D`, `UNetMidBlock2DCrossAttn`,
//! `CrossAttnUpBlock2D` / `UpBlock2D`; `Transformer2DModel`s of `BasicTransformerBlock`s
//! (self-attention, cross-attention over the prompt embedding, GEGLU feed-forward) with
//! `proj_in`/`proj_out` as 1×1 convolutions or linear layers (`use_linear_projection`);
//! heads per level (`attention_head_dim` / `num_attention_heads`, as diffusers reads
//! them), transformer layers per level, `mid_block_scale_factor`,
//! positional time embedding with `flip_sin_to_cos` and `freq_shift`. Every other field
//! is refused by name unless its value is the default (see [`Config::from_json`]).
//!
//! Graph inputs: `x` `(in_channels, S, S)`, `time` `(block_out_channels[0])` from
//! [`Config::time_features`], `context` `(cross_attention_dim, tokens, 1)`: the prompt
//! embedding, channel-major.

use std::path::Path;

use serde_json::json;

use crate::diffusers_config::Fields;
use crate::error::ModelError;
use crate::unet2d::{resnet_block, sinusoidal};
use cipherdm_kernel::graph::{Activation, Graph, GraphBuilder, ValueId};

/// A `UNet2DConditionModel` config (the fields this implementation honours).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Latent side.
    pub sample_size: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Channels out.
    pub out_channels: usize,
    /// Time features as `[cos, sin]`.
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time features.
    pub freq_shift: usize,
    /// Block type per level, top to bottom.
    pub down_block_types: Vec<String>,
    /// Block type per level, bottom to top.
    pub up_block_types: Vec<String>,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// ResNets per down level (up levels have one more).
    pub layers_per_block: usize,
    /// The mid block's ResNets divide their output by this.
    pub mid_block_scale_factor: f64,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm ε (ResNets and the output norm).
    pub norm_eps: f64,
    /// Width of the prompt embedding.
    pub cross_attention_dim: usize,
    /// Attention heads per level, top to bottom.
    pub heads: Vec<usize>,
    /// `BasicTransformerBlock`s per `Transformer2DModel`, per level.
    pub transformer_layers_per_block: Vec<usize>,
    /// `proj_in`/`proj_out` are linear layers (else 1×1 convolutions).
    pub use_linear_projection: bool,
}

/// Most resolution levels.
pub const MAX_LEVELS: usize = 8;
/// Most ResNets (or transformer blocks) per level.
pub const MAX_LAYERS: usize = 16;
/// Widest channel count of any level or of the prompt embedding.
pub const MAX_CHANNELS: usize = 8192;
/// Largest latent side.
pub const MAX_SAMPLE_SIZE: usize = 1024;

const CROSS_DOWN: &str = "CrossAttnDownBlock2D";
const CROSS_UP: &str = "CrossAttnUpBlock2D";

impl Config {
    /// Stable Diffusion 1.5's U-Net (`runwayml/stable-diffusion-v1-5`, `unet/config.json`).
    pub fn sd15() -> Self {
        Self {
            sample_size: 64,
            in_channels: 4,
            out_channels: 4,
            flip_sin_to_cos: true,
            freq_shift: 0,
            down_block_types: vec![
                CROSS_DOWN.into(),
                CROSS_DOWN.into(),
                CROSS_DOWN.into(),
                "DownBlock2D".into(),
            ],
            up_block_types: vec![
                "UpBlock2D".into(),
                CROSS_UP.into(),
                CROSS_UP.into(),
                CROSS_UP.into(),
            ],
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            mid_block_scale_factor: 1.0,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            cross_attention_dim: 768,
            heads: vec![8; 4],
            transformer_layers_per_block: vec![1; 4],
            use_linear_projection: false,
        }
    }

    /// Reads `config.json` (a file, or a diffusers folder containing it).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let (text, what) = crate::diffusers_config::read(path.as_ref())?;
        Self::from_json(&text, &what)
    }

    /// Parses a `config.json`, field by field; `what` names it in errors. Fields that
    /// cannot change an inference (`dropout`, `num_train_timesteps`) and
    /// `upcast_attention` (we compute in f64 or fixed point, never in f16) are accepted
    /// with any value; fields of other architectures (class or addition embeddings, dual
    /// cross-attention, `AdaGroupNorm`, …) only with their "off" value. The result is
    /// validated ([`graph`] accepts every config this returns).
    pub fn from_json(text: &str, what: &str) -> Result<Self, ModelError> {
        let mut f = Fields::parse(text, what)?;
        let sample_size = f.square_side("sample_size")?;
        let block_out_channels = f.usizes("block_out_channels")?;
        let levels = block_out_channels.len();
        let layers_per_block = f.usize_or("layers_per_block", 2)?;
        // diffusers' naming quirk: `attention_head_dim` gives the number of heads unless
        // `num_attention_heads` is set.
        let heads_field = f.opt_usize_per_level("num_attention_heads")?;
        let dim_field = f.opt_usize_per_level("attention_head_dim")?;
        let heads = match (heads_field, dim_field) {
            (Some(h), _) => h.expand(levels, "num_attention_heads")?,
            (None, Some(d)) => d.expand(levels, "attention_head_dim")?,
            (None, None) => vec![8; levels],
        };
        let transformer_layers_per_block = f
            .opt_usize_per_level("transformer_layers_per_block")?
            .map(|t| t.expand(levels, "transformer_layers_per_block"))
            .transpose()?
            .unwrap_or_else(|| vec![1; levels]);
        let cross_attention_dim = match f.opt_usize_per_level("cross_attention_dim")? {
            None => 1280,
            Some(c) => {
                let all = c.expand(levels, "cross_attention_dim")?;
                if all.windows(2).any(|w| w[0] != w[1]) {
                    return Err(ModelError::Config(
                        "config field `cross_attention_dim`: different widths per level are not supported".into(),
                    ));
                }
                all[0]
            }
        };
        let cfg = Self {
            sample_size,
            in_channels: f.usize_or("in_channels", 4)?,
            out_channels: f.usize_or("out_channels", 4)?,
            flip_sin_to_cos: f.bool_or("flip_sin_to_cos", true)?,
            freq_shift: f.usize_or("freq_shift", 0)?,
            down_block_types: f.strings("down_block_types")?,
            up_block_types: f.strings("up_block_types")?,
            block_out_channels,
            layers_per_block,
            mid_block_scale_factor: f.f64_or("mid_block_scale_factor", 1.0)?,
            norm_num_groups: f.usize_or("norm_num_groups", 32)?,
            norm_eps: f.f64_or("norm_eps", 1e-5)?,
            cross_attention_dim,
            heads,
            transformer_layers_per_block,
            use_linear_projection: f.bool_or("use_linear_projection", false)?,
        };
        f.only(
            "mid_block_type",
            json!("UNetMidBlock2DCrossAttn"),
            "the mid block is UNetMidBlock2DCrossAttn",
        )?;
        f.only("act_fn", json!("silu"), "only SiLU")?;
        f.only(
            "center_input_sample",
            json!(false),
            "the input is used as given; centre it before sampling",
        )?;
        f.only("downsample_padding", json!(1), "only 1")?;
        f.only(
            "only_cross_attention",
            json!(false),
            "self-attention is always present",
        )?;
        f.only("dual_cross_attention", json!(false), "one cross-attention")?;
        f.only("resnet_time_scale_shift", json!("default"), "only default")?;
        f.only("resnet_skip_time_act", json!(false), "only false")?;
        f.only("resnet_out_scale_factor", json!(1.0), "only 1")?;
        f.only(
            "time_embedding_type",
            json!("positional"),
            "only positional",
        )?;
        f.only("conv_in_kernel", json!(3), "only 3")?;
        f.only("conv_out_kernel", json!(3), "only 3")?;
        f.only("attention_type", json!("default"), "only default")?;
        f.only(
            "class_embeddings_concat",
            json!(false),
            "no class embedding",
        )?;
        f.only(
            "addition_embed_type_num_heads",
            json!(64),
            "no addition embedding",
        )?;
        for (field, why) in [
            ("class_embed_type", "no class embedding"),
            ("num_class_embeds", "no class embedding"),
            ("addition_embed_type", "no addition embedding"),
            ("addition_time_embed_dim", "no addition embedding"),
            (
                "projection_class_embeddings_input_dim",
                "no class embedding",
            ),
            ("encoder_hid_dim", "the prompt embedding is used as given"),
            (
                "encoder_hid_dim_type",
                "the prompt embedding is used as given",
            ),
            (
                "time_embedding_dim",
                "the time embedding is 4 × block_out_channels[0]",
            ),
            ("time_embedding_act_fn", "no extra time activation"),
            ("timestep_post_act", "no extra time activation"),
            ("time_cond_proj_dim", "no time condition"),
            ("cross_attention_norm", "no cross-attention norm"),
            (
                "mid_block_only_cross_attention",
                "self-attention is always present",
            ),
            (
                "reverse_transformer_layers_per_block",
                "up levels mirror the down levels",
            ),
        ] {
            f.absent(field, why)?;
        }
        f.no_effect("dropout");
        f.no_effect("num_train_timesteps");
        f.no_effect("upcast_attention");
        f.finish("UNet2DConditionModel")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as diffusers writes it (`init-model`).
    pub fn to_json(&self) -> String {
        let v = json!({
            "_class_name": "UNet2DConditionModel",
            "act_fn": "silu",
            "attention_head_dim": self.heads,
            "block_out_channels": self.block_out_channels,
            "cross_attention_dim": self.cross_attention_dim,
            "down_block_types": self.down_block_types,
            "downsample_padding": 1,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
            "in_channels": self.in_channels,
            "layers_per_block": self.layers_per_block,
            "mid_block_scale_factor": self.mid_block_scale_factor,
            "norm_eps": self.norm_eps,
            "norm_num_groups": self.norm_num_groups,
            "out_channels": self.out_channels,
            "sample_size": self.sample_size,
            "transformer_layers_per_block": self.transformer_layers_per_block,
            "up_block_types": self.up_block_types,
            "use_linear_projection": self.use_linear_projection,
        });
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// diffusers' time features of timestep `t`.
    pub fn time_features(&self, t: f64) -> Vec<f64> {
        sinusoidal(
            self.block_out_channels[0],
            t,
            self.flip_sin_to_cos,
            self.freq_shift,
        )
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, m: String| {
            Err(ModelError::Config(format!("config field `{field}`: {m}")))
        };
        let levels = self.block_out_channels.len();
        if levels == 0 || levels > MAX_LEVELS {
            return bad(
                "block_out_channels",
                format!("{levels} levels (1 to {MAX_LEVELS})"),
            );
        }
        for (field, n) in [
            ("down_block_types", self.down_block_types.len()),
            ("up_block_types", self.up_block_types.len()),
        ] {
            if n != levels {
                return bad(field, format!("{n} entries for {levels} levels"));
            }
        }
        for (field, v, lo, hi) in [
            ("layers_per_block", self.layers_per_block, 1, MAX_LAYERS),
            ("sample_size", self.sample_size, 1, MAX_SAMPLE_SIZE),
            ("in_channels", self.in_channels, 1, MAX_CHANNELS),
            ("out_channels", self.out_channels, 1, MAX_CHANNELS),
            (
                "cross_attention_dim",
                self.cross_attention_dim,
                1,
                MAX_CHANNELS,
            ),
            ("norm_num_groups", self.norm_num_groups, 1, MAX_CHANNELS),
        ] {
            if !(lo..=hi).contains(&v) {
                return bad(field, format!("{v} (must be {lo} to {hi})"));
            }
        }
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c == 0 || c > MAX_CHANNELS || !c.is_multiple_of(self.norm_num_groups) {
                return bad(
                    "block_out_channels",
                    format!(
                        "level {i} has {c}: 1 to {MAX_CHANNELS}, a multiple of norm_num_groups"
                    ),
                );
            }
            let h = self.heads[i];
            if h == 0 || !c.is_multiple_of(h) {
                return bad(
                    "attention_head_dim",
                    format!("level {i}: {h} heads do not divide {c} channels"),
                );
            }
            let t = self.transformer_layers_per_block[i];
            if !(1..=MAX_LAYERS).contains(&t) {
                return bad(
                    "transformer_layers_per_block",
                    format!("{t} (1 to {MAX_LAYERS})"),
                );
            }
        }
        if !self.block_out_channels[0].is_multiple_of(2)
            || self.block_out_channels[0] <= 2 * self.freq_shift
        {
            return bad(
                "freq_shift",
                "block_out_channels[0] must be even and exceed 2·freq_shift".into(),
            );
        }
        if !self.sample_size.is_multiple_of(1 << (levels - 1)) {
            return bad(
                "sample_size",
                format!("{} does not halve {} times", self.sample_size, levels - 1),
            );
        }
        if !(self.mid_block_scale_factor.is_finite() && self.mid_block_scale_factor > 0.0) {
            return bad("mid_block_scale_factor", "must be positive".into());
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad("norm_eps", "must be positive".into());
        }
        for t in &self.down_block_types {
            if t != CROSS_DOWN && t != "DownBlock2D" {
                return bad(
                    "down_block_types",
                    format!("`{t}` is not supported ({CROSS_DOWN}, DownBlock2D)"),
                );
            }
        }
        for t in &self.up_block_types {
            if t != CROSS_UP && t != "UpBlock2D" {
                return bad(
                    "up_block_types",
                    format!("`{t}` is not supported ({CROSS_UP}, UpBlock2D)"),
                );
            }
        }
        Ok(())
    }
}

/// Builder state shared by the blocks.
struct Ctx<'a> {
    cfg: &'a Config,
    temb: ValueId,
    context: ValueId,
}

impl Ctx<'_> {
    fn resnet(
        &self,
        g: &mut GraphBuilder,
        p: &str,
        x: ValueId,
        cout: usize,
        out_scale: f64,
    ) -> Result<ValueId, ModelError> {
        let c = self.cfg;
        let h = resnet_block(g, p, x, cout, self.temb, c.norm_num_groups, c.norm_eps)?;
        Ok(if out_scale == 1.0 {
            h
        } else {
            g.scale(&format!("{p}.output_scale"), h, 1.0 / out_scale)
        })
    }

    /// `proj_in` / `proj_out`: a 1×1 convolution or a linear layer.
    fn projection(&self, g: &mut GraphBuilder, p: &str, x: ValueId) -> Result<ValueId, ModelError> {
        let c = g.shape(x)[0];
        Ok(if self.cfg.use_linear_projection {
            g.linear_1x1(p, x, c, true)?
        } else {
            g.conv(p, x, c, 1)?
        })
    }

    /// diffusers' `Transformer2DModel` with `layers` `BasicTransformerBlock`s.
    fn transformer(
        &self,
        g: &mut GraphBuilder,
        p: &str,
        x: ValueId,
        heads: usize,
        layers: usize,
    ) -> Result<ValueId, ModelError> {
        let h = g.group_norm(&format!("{p}.norm"), x, self.cfg.norm_num_groups, 1e-6)?;
        let mut h = self.projection(g, &format!("{p}.proj_in"), h)?;
        for l in 0..layers {
            h = basic_block(
                g,
                &format!("{p}.transformer_blocks.{l}"),
                h,
                self.context,
                heads,
            )?;
        }
        let h = self.projection(g, &format!("{p}.proj_out"), h)?;
        Ok(g.add(&format!("{p}.residual"), x, h)?)
    }
}

/// diffusers' `BasicTransformerBlock`: LayerNorm + self-attention, LayerNorm +
/// cross-attention over `context`, LayerNorm + GEGLU feed-forward (inner width 4c),
/// each with a residual.
fn basic_block(
    g: &mut GraphBuilder,
    b: &str,
    h: ValueId,
    context: ValueId,
    heads: usize,
) -> Result<ValueId, ModelError> {
    let c = g.shape(h)[0];
    let attend = |g: &mut GraphBuilder, n: &str, q_in: ValueId, kv_in: ValueId| {
        let q = g.linear_1x1(&format!("{b}.{n}.to_q"), q_in, c, false)?;
        let k = g.linear_1x1(&format!("{b}.{n}.to_k"), kv_in, c, false)?;
        let v = g.linear_1x1(&format!("{b}.{n}.to_v"), kv_in, c, false)?;
        let a = g.attention(&format!("{b}.{n}"), q, k, v, heads)?;
        g.linear_1x1(&format!("{b}.{n}.to_out.0"), a, c, true)
    };
    let n = g.layer_norm(&format!("{b}.norm1"), h, 1e-5)?;
    let a = attend(g, "attn1", n, n)?;
    let h = g.add(&format!("{b}.residual1"), h, a)?;
    let n = g.layer_norm(&format!("{b}.norm2"), h, 1e-5)?;
    let a = attend(g, "attn2", n, context)?;
    let h = g.add(&format!("{b}.residual2"), h, a)?;
    let n = g.layer_norm(&format!("{b}.norm3"), h, 1e-5)?;
    let proj = g.linear_1x1(&format!("{b}.ff.net.0.proj"), n, 8 * c, true)?;
    let value = g.split(&format!("{b}.ff.value"), proj, 0, 4 * c)?;
    let gate = g.split(&format!("{b}.ff.gate"), proj, 4 * c, 4 * c)?;
    let gate = g.act(&format!("{b}.ff.gelu"), gate, Activation::Gelu);
    let f = g.mul(&format!("{b}.ff.geglu"), value, gate)?;
    let f = g.linear_1x1(&format!("{b}.ff.net.2"), f, c, true)?;
    Ok(g.add(&format!("{b}.residual3"), h, f)?)
}

/// The U-Net graph of `cfg` for prompts of `tokens` tokens.
///
/// ```
/// use cipherdm_models::unet2d_condition::{Config, graph};
/// let g = graph(&Config::sd15(), 77).unwrap();
/// assert_eq!(g.parameter_count(), 859_520_964);
/// ```
pub fn graph(cfg: &Config, tokens: usize) -> Result<Graph, ModelError> {
    cfg.validate()?;
    if tokens == 0 || tokens > 4096 {
        return Err(ModelError::Config(format!(
            "{tokens} prompt tokens (1 to 4096)"
        )));
    }
    let mut g = GraphBuilder::new();
    let ch = &cfg.block_out_channels;
    let levels = ch.len();
    let x = g.input("x", vec![cfg.in_channels, cfg.sample_size, cfg.sample_size]);
    let time = g.input("time", vec![ch[0]]);
    let context = g.input("context", vec![cfg.cross_attention_dim, tokens, 1]);
    let t = g.dense("time_embedding.linear_1", time, 4 * ch[0])?;
    let t = g.act("time_embedding.act", t, Activation::Silu);
    let t = g.dense("time_embedding.linear_2", t, 4 * ch[0])?;
    // Every ResNet applies SiLU to the embedding first: the same value, computed once.
    let temb = g.act("emb_silu", t, Activation::Silu);
    let ctx = Ctx { cfg, temb, context };

    let mut h = g.conv("conv_in", x, ch[0], 3)?;
    let mut skips = vec![h];
    for (i, kind) in cfg.down_block_types.iter().enumerate() {
        for j in 0..cfg.layers_per_block {
            let p = format!("down_blocks.{i}");
            h = ctx.resnet(&mut g, &format!("{p}.resnets.{j}"), h, ch[i], 1.0)?;
            if kind == CROSS_DOWN {
                let (heads, layers) = (cfg.heads[i], cfg.transformer_layers_per_block[i]);
                h = ctx.transformer(&mut g, &format!("{p}.attentions.{j}"), h, heads, layers)?;
            }
            skips.push(h);
        }
        if i + 1 < levels {
            let p = format!("down_blocks.{i}.downsamplers.0.conv");
            h = g.conv_general(&p, h, ch[i], 3, 2, [(1, 1); 2], 1, true)?;
            skips.push(h);
        }
    }
    let (top, s) = (ch[levels - 1], cfg.mid_block_scale_factor);
    h = ctx.resnet(&mut g, "mid_block.resnets.0", h, top, s)?;
    let (heads, layers) = (
        cfg.heads[levels - 1],
        cfg.transformer_layers_per_block[levels - 1],
    );
    h = ctx.transformer(&mut g, "mid_block.attentions.0", h, heads, layers)?;
    h = ctx.resnet(&mut g, "mid_block.resnets.1", h, top, s)?;
    for (i, kind) in cfg.up_block_types.iter().enumerate() {
        let level = levels - 1 - i;
        let c = ch[level];
        for j in 0..=cfg.layers_per_block {
            let skip = skips.pop().ok_or_else(|| {
                ModelError::Config("up blocks consume more skips than exist".into())
            })?;
            h = g.concat(&format!("up_blocks.{i}.concat.{j}"), &[h, skip])?;
            h = ctx.resnet(&mut g, &format!("up_blocks.{i}.resnets.{j}"), h, c, 1.0)?;
            if kind == CROSS_UP {
                let (heads, layers) = (cfg.heads[level], cfg.transformer_layers_per_block[level]);
                let p = format!("up_blocks.{i}.attentions.{j}");
                h = ctx.transformer(&mut g, &p, h, heads, layers)?;
            }
        }
        if i + 1 < levels {
            h = g.upsample2(&format!("up_blocks.{i}.upsample"), h)?;
            h = g.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), h, c, 3)?;
        }
    }
    let h = g.group_norm("conv_norm_out", h, cfg.norm_num_groups, cfg.norm_eps)?;
    let h = g.act("conv_act", h, Activation::Silu);
    let out = g.conv("conv_out", h, cfg.out_channels, 3)?;
    Ok(g.finish(out))
}
