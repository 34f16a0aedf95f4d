"""Two processes on the CPU (`accelerate launch --num_processes 2`, gloo): a short SFT and a short
GRPO run finish on both processes and their result loads (~35 s on 2 cores)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("accelerate")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(script, args, tmp_path, name):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.path.join(ROOT, "modeling"))
    # The config launches through accelerate's multi-process (torchrun) launcher; the recipes'
    # use_cpu=True makes each process's state MULTI_CPU over gloo (see cpu_ddp.yaml).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           os.path.join(ROOT, "recipes", "accelerate", "cpu_ddp.yaml"), "--num_processes", "2",
           "--main_process_port", str(_free_port()), os.path.join(ROOT, "recipes", script), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    (tmp_path / f"{name}.log").write_text(log)
    assert proc.returncode == 0, log[-4000:]
    return log


def test_two_process_sft_then_grpo(tmp_path):
    from f2rvlm.data import build_synthetic

    data = str(tmp_path / "data")
    build_synthetic(data, num_dialogues=8, seed=0, language="en", show_progress=False)
    common = ["--model_name_or_path", "tiny:qwen2_vl:test", "--report_to", "none", "--save_strategy", "no",
              "--template", "en", "--dataset_path", data, "--use_peft", "true", "--save_merged", "true"]
    sft_out = tmp_path / "sft"
    log = _launch("sft.py", common + ["--max_steps", "2", "--per_device_train_batch_size", "1",
                                      "--output_dir", str(sft_out)], tmp_path, "sft")
    assert "SFT done on process 0" in log and "SFT done on process 1" in log
    grpo_out = tmp_path / "grpo"
    log = _launch("grpo.py", ["--model_name_or_path", str(sft_out / "merged"), "--report_to", "none",
                              "--save_strategy", "no", "--template", "en", "--dataset_path", data,
                              "--dataset_train_split", "train_grpo", "--max_steps", "1", "--num_generations", "2",
                              "--per_device_train_batch_size", "2", "--max_completion_length", "8",
                              "--beta", "0.0", "--save_merged", "true", "--output_dir", str(grpo_out)],
                  tmp_path, "grpo")
    assert "GRPO done on process 0" in log and "GRPO done on process 1" in log

    from f2rvlm.models.hub import load_model

    for folder in (sft_out / "merged", grpo_out / "merged"):
        model, processor = load_model(str(folder))
        assert model.retrieve({"utterances": [{"speaker": "user1", "text": "hi"}]}, "greeting",
                              processor=processor).mode == "generate"
