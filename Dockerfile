# Runtime image for the experiments: CUDA PyTorch matching the torch pin in requirements.txt.
#   ./docker_build.sh -n confidence_mi
#   docker run --rm --shm-size 16G --name my_confidence_mi --gpus '"device=0"' \
#       -v $(pwd):/workspace/confidences -it confidence_mi bash
# The project itself is mounted at run time, not copied: only requirements.txt is baked in.
FROM pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime

ENV LC_ALL=C.UTF-8 \
    LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

# curl + unzip for download_pretrained_models.sh, git for the StyleGAN2-ADA checkout.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl unzip git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/confidences

# Keep the image's CUDA build of torch: constrain it to the installed version so pip never swaps
# it for a PyPI wheel (requirements.txt pins the same version; the image's torchvision matches).
COPY requirements.txt ./
RUN pip list --format=freeze | grep -iE '^torch==' > /tmp/constraints.txt \
    && pip install -r requirements.txt -c /tmp/constraints.txt \
    && python -c "import torch, torchvision, sklearn, pandas, matplotlib, laplace; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

CMD ["bash"]
