#!/usr/bin/env bash
# Serve exported tf_defocus SavedModels with the official TensorFlow Serving image.
#
#   export/serving/docker_run.sh [EXPORT_ROOT]          # one model: blur_estimator
#   CONFIG=1 export/serving/docker_run.sh [EXPORT_ROOT] # every model in models.config
#
# EXPORT_ROOT (default ./exported) is the --out of
#   python -m tf_defocus.export --format=saved_model --model=<model_dir>/blur_estimator.keras --out=exported
# and holds <model_name>/<version>/saved_model.pb. REST on :8501, gRPC on :8500.
# Warm-up records in assets.extra/ are replayed at load (TF Serving's --enable_model_warmup
# defaults to true). Then: python export/serving/client.py photo.jpg --out_dir=maps
set -euo pipefail

ROOT="$(cd "${1:-exported}" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ "${CONFIG:-0}" == "1" ]]; then
  docker run --rm -p 8500:8500 -p 8501:8501 \
    --mount type=bind,source="${ROOT}",target=/models \
    --mount type=bind,source="${HERE}/models.config",target=/config/models.config,readonly \
    -t tensorflow/serving \
    --model_config_file=/config/models.config --model_config_file_poll_wait_seconds=60
else
  docker run --rm -p 8501:8501 \
    --mount type=bind,source="${ROOT}/blur_estimator",target=/models/blur_estimator \
    -e MODEL_NAME=blur_estimator -t tensorflow/serving
fi
