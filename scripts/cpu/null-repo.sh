# null-repo.sh, sourced by serve-cost.sh and serve-ab.sh: null_repo DIR MBS
# writes a model repository of m3e-base's shape for `serve --engine null`
# (the tiny fixture's tokenizer and pooling at width 768; the null engine
# reads no weights, and model.onnx is a placeholder the resolver wants),
# one CPU instance, max_batch_size MBS, the continuous policy.
null_repo() {
  local repo=$1 mbs=$2 here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  local v="$repo/m3e-base/1" tiny="$here/testdata/m3e-tiny/hf"
  rm -rf "$repo" && mkdir -p "$v"
  cp -r "$tiny/1_Pooling" "$tiny/2_Normalize" "$tiny/modules.json" "$tiny/tokenizer.json" "$tiny/tokenizer_config.json" "$tiny/vocab.txt" "$v/"
  sed 's/"hidden_size": 64/"hidden_size": 768/' "$tiny/config.json" >"$v/config.json"
  sed 's/"embedding_dimension": 64/"embedding_dimension": 768/' "$tiny/1_Pooling/config.json" >"$v/1_Pooling/config.json"
  echo "placeholder: the null engine reads no graph" >"$v/model.onnx"
  cat >"$repo/m3e-base/config.pbtxt" <<CFG
name: "m3e-base"
max_batch_size: $mbs
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ 768 ] data_type: TYPE_FP32 } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters { key: "BATCHING_POLICY" value: { string_value: "continuous" } }
CFG
}
