//! BLOOM as exported by `models/export_bloom_onnx.py`, run by tract: one forward step over new
//! token ids and the key/value cache of the tokens before them.

use std::path::Path;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{DimLike, ensure};
use tract_onnx::tract_core::optim::Optimizer;

use super::CpuEngineError;

/// The compiled model and the shape of its cache.
pub struct BloomOnnx {
    plan: Arc<TypedRunnableModel>,
    layers: usize,
    heads: usize,
    head_dim: usize,
}

/// The keys and values of every layer for the tokens seen so far, as the model returned them.
pub struct KvCache {
    tensors: TVec<TValue>,
    len: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl BloomOnnx {
    /// Loads, checks and compiles `model.onnx` (with its external data beside it).
    pub fn load(path: &Path) -> Result<Self, CpuEngineError> {
        let malformed = |e: TractError| CpuEngineError::Malformed {
            path: path.display().to_string(),
            reason: format!("{e:#}"),
        };
        let started = Instant::now();
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(malformed)?
            .into_typed()
            .map_err(malformed)?;
        let (layers, heads, head_dim) =
            cache_shape(&model).map_err(|reason| CpuEngineError::Malformed {
                path: path.display().to_string(),
                reason,
            })?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            layers,
            heads,
            head_dim,
            "cpu engine: model read"
        );
        let model = optimize(model).map_err(malformed)?;
        let plan = model.into_runnable().map_err(malformed)?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "cpu engine: model compiled"
        );
        Ok(Self {
            plan,
            layers,
            heads,
            head_dim,
        })
    }

    /// A cache holding nothing: the first step is the whole prompt.
    pub fn empty_cache(&self) -> TractResult<KvCache> {
        let shape = [1, self.heads, 0, self.head_dim];
        let tensors = (0..2 * self.layers)
            .map(|_| Tensor::zero::<f32>(&shape).map(IntoTValue::into_tvalue))
            .collect::<TractResult<TVec<_>>>()?;
        Ok(KvCache { tensors, len: 0 })
    }

    /// Runs `ids` after the tokens in `cache`: the next token's logits, and the grown cache.
    pub fn step(&self, ids: &[u32], cache: KvCache) -> TractResult<(Vec<f32>, KvCache)> {
        ensure!(!ids.is_empty(), "a step needs at least one token");
        ensure!(
            cache.tensors.len() == 2 * self.layers,
            "the cache holds {} tensors, the model takes {}",
            cache.tensors.len(),
            2 * self.layers
        );
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let len = cache.len + ids.len();
        let mut inputs: TVec<TValue> =
            tvec![Tensor::from_shape(&[1, ids.len()], &ids)?.into_tvalue()];
        inputs.extend(cache.tensors);
        let mut outputs = self.plan.run(inputs)?;
        ensure!(outputs.len() == 1 + 2 * self.layers, "unexpected outputs");
        let tensors: TVec<TValue> = outputs.drain(1..).collect();
        let logits = outputs[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        Ok((logits, KvCache { tensors, len }))
    }
}

/// Layers, heads and head size from the graph's inputs: `input_ids`, then a key and a value
/// `[1, heads, P, head_dim]` per layer.
fn cache_shape(model: &TypedModel) -> Result<(usize, usize, usize), String> {
    let inputs = model.input_outlets().map_err(|e| e.to_string())?;
    if inputs.len() < 3 || inputs.len() % 2 == 0 {
        return Err(format!(
            "expected input_ids and a key/value pair per layer, found {} inputs: not an export of export_bloom_onnx.py",
            inputs.len()
        ));
    }
    let fact = model.outlet_fact(inputs[1]).map_err(|e| e.to_string())?;
    let dims = fact.shape.dims();
    let concrete = |i: usize| dims.get(i).and_then(|d| d.to_usize().ok());
    match (dims.len(), concrete(1), concrete(3)) {
        (4, Some(heads), Some(head_dim)) => Ok(((inputs.len() - 1) / 2, heads, head_dim)),
        _ => Err(format!(
            "past key input has shape {:?}, expected [1, heads, P, head_dim]",
            fact.shape
        )),
    }
}

/// tract's declutter and codegen, without `FoldUniformMask`: in 0.23 it folds BLOOM's causal
/// mask (positions compared with a symbolic offset) wrongly and the model fails to run.
fn optimize(mut model: TypedModel) -> TractResult<TypedModel> {
    let mut declutter = Optimizer::declutter();
    declutter
        .passes
        .retain(|pass| !format!("{pass:?}").starts_with("FoldUniformMask"));
    declutter.optimize(&mut model)?;
    model.optimize()?;
    Ok(model)
}
