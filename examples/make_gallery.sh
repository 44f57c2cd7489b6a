#!/bin/sh
# Regenerate every picture of docs/gallery.md, from the repository root:
#     sh examples/make_gallery.sh
# Each example prints the `gflow` commands it runs ($ gflow ...) and its headline numbers.
# The runs go to runs/examples/<name>/; about 4 minutes on 2 cores for sections 1-13, about 8 for
# the peers' cases (sections 15-17, measured on cores shared with other work; most of it the 3-D fv
# of chizat_relu) and about 29 for the symmetry gallery (SGD in R^401 for d = 400; measured from a
# fresh clone, docs/gallery.md).
set -e
cd "$(dirname "$0")/.."
out=docs/images/gallery
for name in scaling particles_to_pde random_feature sgd_noise langevin aggregation; do
    echo "== $name"
    python examples/$name.py -o $out/$name.png --runs runs/examples/$name
done
# the five resnet pictures (resnet_*.png) come from one script
echo "== resnet_gallery"
python examples/resnet_gallery.py -o $out --runs runs/examples/resnet
# the two finite-width pictures (fluctuation_*.png): a prediction and a 500-run ensemble each
echo "== fluctuation_gallery"
python examples/fluctuation_gallery.py -o $out --runs runs/examples/fluctuation
# the peers' own cases beside numpy ports of their code (rbf_birth_death.png, chizat_relu.png,
# sparse_deconvolution.png)
for name in rbf_birth_death chizat_relu sparse_deconvolution; do
    echo "== $name"
    python examples/$name.py -o $out/$name.png --runs runs/examples/$name
done
# the two symmetry pictures (symmetry_*.png): fv on the invariants against SGD in R^(1+d), about 29 minutes
echo "== symmetry_gallery"
python examples/symmetry_gallery.py -o $out --runs runs/examples/symmetry
