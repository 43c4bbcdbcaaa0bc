module example.com/toyos

go 1.26.8

require github.com/returnpath/returnpath v0.0.0-00010101000000-000000000000

require github.com/google/go-cmp v0.7.0 // indirect

// An out-of-tree driver requires a released returnpath; this example builds against the
// checkout it lives in.
replace github.com/returnpath/returnpath => ../..
