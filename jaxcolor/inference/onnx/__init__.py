"""The generator as an ONNX graph: `graph` builds it from a restored G, `runtime` runs it in
ONNX Runtime (the fast CPU backend of `Colorizer`), `export` writes it to a file. `onnx` and
`onnxruntime` are optional (`pip install 'jaxcolor[onnx]'`) and imported only when used."""
