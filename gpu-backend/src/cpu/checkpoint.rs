//! Reading a Hugging Face checkpoint's safetensors (one file or an index of shards) tensor by
//! tensor, and a large matrix a band of rows at a time, so that loading bloom-560m at int8 never
//! holds its 1 GB fp32 embedding whole.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cpu_kernels::{Matrix, Precision};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};

/// Values converted per read: a band of rows of about 16 MB in fp32.
const BAND_VALUES: usize = 4 << 20;

pub struct Checkpoint {
    tensors: HashMap<String, (usize, TensorInfo)>,
    files: Vec<(PathBuf, u64)>,
}

impl Checkpoint {
    /// `model.safetensors`, or the shards that `model.safetensors.index.json` names.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let paths: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| e.to_string())?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
            let mut shards: Vec<String> = json["weight_map"]
                .as_object()
                .ok_or("the index has no weight_map")?
                .values()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            shards.sort();
            shards.dedup();
            shards.iter().map(|s| dir.join(s)).collect()
        } else {
            return Err("model.safetensors not found".into());
        };
        let mut tensors = HashMap::new();
        let mut files = Vec::new();
        for (i, path) in paths.into_iter().enumerate() {
            let (start, metadata) =
                read_header(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (name, info) in metadata.tensors() {
                tensors.insert(name, (i, info.clone()));
            }
            files.push((path, start));
        }
        Ok(Self { tensors, files })
    }

    /// The tensor's shape, by its name with or without the `transformer.` prefix that
    /// `BloomForCausalLM` checkpoints carry and `BloomModel` ones do not.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.find(name).map(|(_, info)| info.shape.as_slice())
    }

    fn find(&self, name: &str) -> Option<&(usize, TensorInfo)> {
        self.tensors
            .get(&format!("transformer.{name}"))
            .or_else(|| self.tensors.get(name))
    }

    /// A whole tensor as fp32 (for vectors: biases and layer norms).
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let shape = self.shape(name).ok_or_else(|| format!("{name} missing"))?;
        if shape.iter().product::<usize>() != len {
            return Err(format!("{name} has shape {shape:?}, expected {len} values"));
        }
        self.read(name, 0, len)
    }

    /// A `[rows, cols]` tensor as a matrix at `precision`, quantized a band at a time.
    pub fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        precision: Precision,
    ) -> Result<Matrix, String> {
        let shape = self.shape(name).ok_or_else(|| format!("{name} missing"))?;
        if shape != [rows, cols] {
            return Err(format!(
                "{name} has shape {shape:?}, expected [{rows}, {cols}]"
            ));
        }
        let mut matrix = Matrix::zeros(precision, rows, cols);
        let band = (BAND_VALUES / cols).max(1);
        let mut first = 0;
        while first < rows {
            let count = band.min(rows - first);
            let values = self.read(name, first * cols, count * cols)?;
            matrix
                .set_rows(first, &values)
                .map_err(|e| format!("{name}: {e}"))?;
            first += count;
        }
        Ok(matrix)
    }

    /// `len` values from element `start` of a tensor, converted to fp32.
    fn read(&self, name: &str, start: usize, len: usize) -> Result<Vec<f32>, String> {
        let (file, info) = self.find(name).ok_or_else(|| format!("{name} missing"))?;
        let size = match info.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => return Err(format!("{name}: dtype {other:?} is not supported")),
        };
        let (path, data_start) = &self.files[*file];
        let (begin, end) = info.data_offsets;
        if (start + len) * size > end - begin {
            return Err(format!("{name}: read past the tensor"));
        }
        let mut bytes = vec![0u8; len * size];
        let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.seek(SeekFrom::Start(data_start + (begin + start * size) as u64))
            .and_then(|_| f.read_exact(&mut bytes))
            .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
        let values = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(values)
    }
}

/// The header (its length in 8 bytes, then JSON) and where the data starts; the file must be
/// as long as the header says.
fn read_header(path: &Path) -> Result<(u64, Metadata), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| e.to_string())?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err("not a safetensors file (header too large)".into());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| e.to_string())?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("not a safetensors file ({e})"))?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if 8 + n + metadata.data_len() as u64 != size {
        return Err(format!(
            "truncated: the header promises {} bytes of data, the file has {}",
            metadata.data_len(),
            size.saturating_sub(8 + n)
        ));
    }
    Ok((8 + n, metadata))
}
