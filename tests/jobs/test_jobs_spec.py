"""JobSpec loading and validation: files, flags, memory and duration strings, clear errors.

GPU checks run against the ``declared`` inventory (4 fake H100s), not real hardware.
"""

from __future__ import annotations

import pytest
from jobs_support import write_script

from forgeml.errors import NotFoundError, ValidationError
from forgeml.jobs import JobSpec, list_jobs, parse_duration, parse_memory, submit
from forgeml.jobs.flags import spec_from_flags
from forgeml.jobs.spec import gpu_matches


@pytest.mark.parametrize(("text", "mib"), [
    ("16Gi", 16384), ("16GiB", 16384), ("16GB", 15258), ("16G", 15258), ("512Mi", 512), ("1.5Gi", 1536),
    ("2048", 2048), (4096, 4096), ("1Ti", 1048576), ("1073741824B", 1024), ("16gi", 16384),
])
def test_memory_strings_parse_to_mib(text, mib) -> None:
    """Binary units are powers of 1024, decimal ones powers of 1000, a bare number is MiB."""
    assert parse_memory(text) == mib


@pytest.mark.parametrize("bad", ["16Gx", "sixteen", "16 gigs", "-1G", "", "G16", True])
def test_bad_memory_strings_say_how_to_write_one(bad) -> None:
    """A malformed size names the value and shows the accepted forms."""
    with pytest.raises(ValidationError, match="16Gi"):
        parse_memory(bad)


def test_durations() -> None:
    """Seconds, minutes, hours and combinations parse; nonsense does not."""
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration(2.5) == 2.5
    for bad in ("soon", "10x", "0", -3):
        with pytest.raises(ValidationError):
            parse_duration(bad)


def test_gpu_type_matching() -> None:
    """Product families match NVML names; A10 is not an A100."""
    assert gpu_matches("H100", "NVIDIA H100 80GB HBM3")
    assert gpu_matches("a100", "NVIDIA A100-SXM4-40GB")
    assert gpu_matches("RTX4090", "NVIDIA GeForce RTX 4090")
    assert not gpu_matches("A10", "NVIDIA A100-SXM4-40GB")
    assert not gpu_matches("L40", "NVIDIA L40S")


def test_toml_and_yaml_files_load_the_same_spec(tmp_path) -> None:
    """Friendly keys (memory, timeout, min_gpu_memory) convert; workdir defaults to the file's folder."""
    (tmp_path / "job.toml").write_text(
        'script = "train.py"\nargs = ["--epochs", "3"]\ngpus = 2\ngpu_type = "H100"\nmin_gpu_memory = "40Gi"\n'
        'memory = "16GB"\ntimeout = "2h"\npriority = 5\nretries = 2\n[params]\nlr = 0.001\n')
    (tmp_path / "job.yaml").write_text(
        "script: train.py\nargs: [--epochs, '3']\ngpus: 2\ngpu_type: H100\nmin_gpu_memory: 40Gi\n"
        "memory: 16GB\ntimeout: 2h\npriority: 5\nretries: 2\nparams: {lr: 0.001}\n")
    a, b = JobSpec.from_file(tmp_path / "job.toml"), JobSpec.from_file(tmp_path / "job.yaml")
    assert a == b
    assert (a.min_gpu_memory_mb, a.memory_mb, a.timeout_s, a.params) == (40960, 15258, 7200.0, {"lr": 0.001})
    assert a.workdir == str(tmp_path.resolve())


def test_unknown_key_in_a_file_suggests_the_right_one(tmp_path) -> None:
    """A typo in a spec file is an error with a did-you-mean, not silently ignored."""
    (tmp_path / "job.toml").write_text('script = "t.py"\npriorty = 3\n')
    with pytest.raises(ValidationError, match="priorty.*did you mean 'priority'"):
        JobSpec.from_file(tmp_path / "job.toml")
    (tmp_path / "broken.yaml").write_text("script: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        JobSpec.from_file(tmp_path / "broken.yaml")


def test_flags_override_the_spec_file(tmp_path) -> None:
    """CLI flags win over the file; --param values are read as JSON where they parse."""
    (tmp_path / "job.toml").write_text('script = "train.py"\ngpus = 1\npriority = 1\n[params]\nlr = 0.1\n')
    spec = spec_from_flags(None, [], str(tmp_path / "job.toml"),
                           {"gpus": 2, "priority": None, "params": ("lr=1e-3", "layers=[1,2]", "opt=adam"),
                            "env": ("A=1",), "memory": "8Gi", "timeout": "90s"})
    assert spec.gpus == 2 and spec.priority == 1
    assert spec.params == {"lr": 0.001, "layers": [1, 2], "opt": "adam"}
    assert spec.env == {"A": "1"} and spec.memory_mb == 8192 and spec.timeout_s == 90
    with pytest.raises(ValidationError, match="NAME=VALUE"):
        spec_from_flags("t.py", [], None, {"params": ("lr",)})


def test_argv_uses_torchrun_for_multi_gpu_pytorch() -> None:
    """A pytorch job with several GPUs (or nproc) runs under torch.distributed.run, one process each."""
    ddp = JobSpec(script="train.py", framework="pytorch", gpus=4, args=["--x"]).argv("py")
    assert ddp == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "train.py", "--x"]
    assert JobSpec(script="train.py", gpus=4).argv("py") == ["py", "train.py"]
    assert JobSpec(script="t.py", framework="pytorch", nproc=2).argv("py")[4] == "--nproc-per-node=2"
    assert JobSpec(command=["echo", "hi"]).argv("py") == ["echo", "hi"]


def test_validation_errors_are_clear_and_queue_nothing(jobs_ws) -> None:
    """Unknown GPU type, too many GPUs, missing script, unknown target: clear errors, no job queued."""
    write_script(jobs_ws, "train.py", "print('hi')\n")
    cases = [
        (JobSpec(script="train.py", gpus=1, gpu_type="H10"), ValidationError, "unknown GPU type 'H10'.*did you mean"),
        (JobSpec(script="train.py", gpus=1, gpu_type="A100"), ValidationError, "0 \\(4× NVIDIA H100"),
        (JobSpec(script="train.py", gpus=5), ValidationError, "asks for 5 GPUs but target 'local' has 4"),
        (JobSpec(script="missing.py"), ValidationError, "script 'missing.py' not found"),
        (JobSpec(script="train.py", target="cluster"), NotFoundError, "unknown compute target 'cluster'"),
        (JobSpec(script="train.py", gpus=1, min_gpu_memory_mb=200_000), ValidationError, "largest"),
        (JobSpec(script="train.py", cpus=10_000), ValidationError, "CPUs but target 'local' has"),
        (JobSpec(), ValidationError, "exactly one of a script"),
        (JobSpec(script="train.py", framework="keras"), ValidationError, "unknown framework"),
        (JobSpec(script="train.py", shared=True), ValidationError, "need gpus >= 1"),
    ]
    for spec, error, message in cases:
        with pytest.raises(error, match=message):
            submit(spec, jobs_ws)
    assert list_jobs(workspace=jobs_ws) == []
    job = submit(JobSpec(script="train.py", gpus=4, gpu_type="H100"), jobs_ws)
    assert job.state == "PENDING" and job.spec.workdir == str(jobs_ws.root)
