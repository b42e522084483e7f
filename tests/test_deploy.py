"""The Dockerfile and the systemd unit, checked without a container or systemd.

No image can be pulled on this machine and Podman cannot start a container here, so the
Dockerfile is read by a small parser of our own and played out on the host: exactly the
files it COPYs go into a fresh folder standing for the image's `/`, its RUN line installs
them into a fresh venv standing for the base image's Python (`/usr/local`), and its CMD runs
with the image's ENV (image paths rewritten into that folder). A file missing from the COPY
list then fails here, as it would fail `docker build`. The systemd unit is checked the same
way: the layout its header documents is built under a temporary folder and the command of
its ExecStart runs there.

Not modelled: the base image's own files (its tz database, shared libraries), USER,
ARG/variable substitution, .dockerignore (refused, so it cannot be silently ignored),
and the unit's User= (the command runs as whoever runs the tests).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
UNIT = REPO / "deploy" / "ainews-scheduler.service"

# What the build may take from this machine's network set-up (the configured package
# index, proxies, certificates); the image's own environment never sees these.
_BUILD_PASSTHROUGH = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                      "https_proxy", "no_proxy", "SSL_CERT_", "REQUESTS_CA_BUNDLE",
                      "XDG_CONFIG_DIRS")
# The python:* images' PATH, /usr/local/bin first (where their pip puts console scripts).
_IMAGE_PATH = ("/usr/local/bin", "/usr/local/sbin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# systemd's PATH for services (systemd.exec(5)).
_SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerfileError(Exception):
    """The Dockerfile uses something this model of `docker build` does not cover."""


class ImageBuildError(Exception):
    """`docker build` would fail: a COPY source is missing or a RUN line exits non-zero."""


# -- the Dockerfile ------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Dockerfile:
    base: str
    steps: list[Instruction] = field(default_factory=list)  # WORKDIR, COPY, RUN, ENV
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    stopsignal: str | None = None


def instructions(text: str) -> list[Instruction]:
    """Logical lines: comments dropped, `\\` continuations joined as Docker joins them."""
    found: list[Instruction] = []
    current: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # inside a continuation too, as Docker does
        if current is None:
            current, start = "", number
        joined = re.sub(r"\\[ \t]*$", "", raw)
        current += joined
        if joined != raw:
            continue
        keyword, _, args = current.strip().partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        current = None
    if current is not None:
        raise DockerfileError(f"line {start}: the file ends inside a continuation")
    return found


def _exec_form(instruction: Instruction) -> list[str]:
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise DockerfileError(
            f"line {instruction.line}: {instruction.keyword} must be in JSON (exec) form, "
            "else sh is PID 1 and `docker stop`'s SIGTERM never reaches ainews")
    return [str(v) for v in value]


def parse_env(args: str) -> dict[str, str]:
    """`ENV A=b C="d e"` and the older `ENV A b c` (one variable, the rest its value)."""
    words = shlex.split(args)
    if not words:
        raise DockerfileError("ENV without a variable")
    if "=" in words[0]:
        pairs = [word.partition("=") for word in words]
        if any(not sep or not key for key, sep, _ in pairs):
            raise DockerfileError(f"ENV {args}: mixes KEY=value and KEY value forms")
        values = {key: value for key, _, value in pairs}
    else:
        values = {words[0]: " ".join(words[1:])}
    for key, value in values.items():
        if "$" in value:
            raise DockerfileError(f"ENV {key}: variable substitution is not modelled")
    return values


def parse_dockerfile(text: str) -> Dockerfile:
    found = instructions(text)
    if not found or found[0].keyword != "FROM":
        raise DockerfileError("a Dockerfile starts with FROM")
    parsed = Dockerfile(base=found[0].args)
    for instruction in found[1:]:
        match instruction.keyword:
            case "FROM":
                raise DockerfileError(f"line {instruction.line}: multi-stage builds are not "
                                      "modelled")
            case "WORKDIR" | "COPY" | "RUN":
                parsed.steps.append(instruction)
            case "ENV":
                parse_env(instruction.args)  # fail early on a form we cannot read
                parsed.steps.append(instruction)
            case "CMD":
                parsed.cmd = _exec_form(instruction)
            case "ENTRYPOINT":
                parsed.entrypoint = _exec_form(instruction)
            case "STOPSIGNAL":
                parsed.stopsignal = instruction.args
            case "LABEL" | "EXPOSE":
                pass  # metadata: nothing for a build or a run to do
            case other:
                raise DockerfileError(f"line {instruction.line}: {other} is not modelled; "
                                      "teach tests/test_deploy.py what it does")
    return parsed


def _copy_args(instruction: Instruction) -> tuple[list[str], str]:
    if instruction.args.startswith("["):
        words = json.loads(instruction.args)
    else:
        words = shlex.split(instruction.args)
    paths = [word for word in words if not word.startswith("--")]
    for flag in (word for word in words if word.startswith("--")):
        if not flag.startswith(("--chown=", "--chmod=")):
            raise DockerfileError(f"line {instruction.line}: COPY {flag} is not modelled")
    if len(paths) < 2:
        raise DockerfileError(f"line {instruction.line}: COPY needs a source and a dest")
    return paths[:-1], paths[-1]


# -- playing it out on the host ------------------------------------------------------------

@dataclass
class Image:
    """A built image on the host: `root` stands for its `/`."""

    root: Path
    python_prefix: Path  # the venv standing for the base image's /usr/local
    env: dict[str, str]
    workdir: PurePosixPath
    command: list[str]
    stopsignal: str | None

    def path(self, image_path: str | PurePosixPath) -> Path:
        return _under(self.root, PurePosixPath(image_path))

    def run(self, argv: list[str], extra_env: Mapping[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command in the image: its ENV only (not the test's), in its WORKDIR."""
        env = {**self.env, **(extra_env or {})}
        program = shutil.which(argv[0], path=env["PATH"])
        assert program is not None, f"{argv[0]!r} is not on the image's PATH {env['PATH']}"
        assert Path(program).is_relative_to(self.root), (
            f"{argv[0]!r} came from the host ({program}), not from the image")
        return subprocess.run([program, *argv[1:]], cwd=self.path(self.workdir), env=env,
                              capture_output=True, text=True, timeout=120, check=False)


def _under(root: Path, image_path: PurePosixPath) -> Path:
    assert image_path.is_absolute(), image_path
    return root.joinpath(*PurePosixPath(posixpath.normpath(image_path)).parts[1:])


def _rewrite_paths(value: str, root: Path) -> str:
    """An absolute path (or a PATH-like list of them) in ENV, moved under the image root."""
    if not value.startswith("/"):
        return value
    return os.pathsep.join(str(_under(root, PurePosixPath(part))) if part.startswith("/")
                           else part for part in value.split(":"))


def _python_for(base: str) -> str:
    """The host interpreter standing for the base image's Python (python:X.Y[-variant])."""
    match = re.fullmatch(r"(?:docker\.io/(?:library/)?)?python:(\d+)\.(\d+)[\w.-]*", base)
    if match is None:
        raise DockerfileError(f"FROM {base}: only the official python:X.Y images are modelled")
    version = (int(match[1]), int(match[2]))
    if sys.version_info[:2] == version:
        return sys.executable
    other = shutil.which(f"python{version[0]}.{version[1]}")
    if other is None:
        pytest.skip(f"FROM {base}: no python{version[0]}.{version[1]} on this machine to "
                    "stand for the image's Python")
    return other


def build_image(text: str, context: Path, root: Path) -> Image:
    """`docker build` without a container: COPY from `context` into `root`, RUN there."""
    if (context / ".dockerignore").exists():
        raise DockerfileError(".dockerignore is not modelled: teach tests/test_deploy.py")
    dockerfile = parse_dockerfile(text)
    prefix = _under(root, PurePosixPath("/usr/local"))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_python_for(dockerfile.base), "-m", "venv", str(prefix)], check=True,
                   capture_output=True, timeout=300)
    home = _under(root, PurePosixPath("/root"))
    home.mkdir()
    image_path = os.pathsep.join(str(_under(root, PurePosixPath(p))) for p in _IMAGE_PATH[:2])
    env = {"PATH": os.pathsep.join([image_path, *_IMAGE_PATH[2:]]), "LANG": "C.UTF-8",
           "HOME": str(home)}
    workdir = PurePosixPath("/")
    for step in dockerfile.steps:
        if step.keyword == "WORKDIR":
            workdir = PurePosixPath(posixpath.normpath(workdir / step.args))
            _under(root, workdir).mkdir(parents=True, exist_ok=True)
        elif step.keyword == "ENV":
            env.update({key: _rewrite_paths(value, root)
                        for key, value in parse_env(step.args).items()})
        elif step.keyword == "COPY":
            sources, dest = _copy_args(step)
            _copy(context, sources, dest, _under(root, workdir / dest), step.line)
        else:  # RUN, shell form as Docker runs it: /bin/sh -c, in WORKDIR, with ENV so far
            build_env = {**env, **{k: v for k, v in os.environ.items()
                                   if k.startswith(_BUILD_PASSTHROUGH)}}
            done = subprocess.run(["/bin/sh", "-c", step.args], cwd=_under(root, workdir),
                                  env=build_env, capture_output=True, text=True, timeout=900,
                                  check=False)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
                raise ImageBuildError(f"line {step.line}: RUN {step.args} exited "
                                      f"{done.returncode}:\n{tail}")
    return Image(root=root, python_prefix=prefix, env=env, workdir=workdir,
                 command=dockerfile.entrypoint + dockerfile.cmd,
                 stopsignal=dockerfile.stopsignal)


def _copy(context: Path, sources: list[str], dest: str, target: Path, line: int) -> None:
    into_folder = dest.endswith("/") or dest in (".", "..") or len(sources) > 1
    for source in sources:
        if re.search(r"[*?\[]", source) or source.startswith("/") or ".." in source.split("/"):
            raise DockerfileError(f"line {line}: COPY {source}: globs and paths outside the "
                                  "context are not modelled")
        origin = context / source
        if not origin.exists():
            raise ImageBuildError(f"line {line}: COPY {source}: not found in the build context")
        if origin.is_dir():  # its contents, not the folder itself, as Docker copies
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            destination = target / origin.name if into_folder else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The repository's Dockerfile, built once for the module (a real `pip install`)."""
    return build_image(DOCKERFILE.read_text(encoding="utf-8"), REPO,
                       tmp_path_factory.mktemp("image"))


def schedule_next(image: Image, *options: str) -> subprocess.CompletedProcess[str]:
    """The image's command, `schedule run` (which blocks for ever) swapped for `schedule
    next`: the same program, config loading and environment, and it exits."""
    assert image.command[-2:] == ["schedule", "run"], image.command
    return image.run([*image.command[:-1], "next", *options])


def _volume(folder: Path, cron: str) -> str:
    """A newsletter folder as a user mounts it: the sample config (its cron changed, so
    only this file can be what the command read), and the posts."""
    sample = (REPO / "config.toml").read_text(encoding="utf-8")
    config, count = re.subn(r'(?m)^cron = "[^"]*"', f'cron = "{cron}"', sample)
    assert count == 1, "the sample config.toml has one [schedule] cron line"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(config, encoding="utf-8")
    shutil.copytree(REPO / "posts", folder / "posts", dirs_exist_ok=True)
    return str(tomllib.loads(config)["newsletter"]["timezone"])


# -- the image -----------------------------------------------------------------------------

# These start `ainews` processes that read the clock (`schedule next`): scripts/test-clocks
# runs them again at its fake dates.
@pytest.mark.clock
def test_image_command_runs_from_exactly_the_copied_files(image: Image) -> None:
    docs = (REPO / "docs" / "scheduling.md").read_text(encoding="utf-8")
    assert image.command == ["ainews", "schedule", "run"]
    assert "the `Dockerfile`'s default command is `ainews schedule run`" in docs
    assert image.stopsignal in (None, "SIGTERM"), "the docs promise SIGTERM finishes cleanly"
    # The documented run mounts the newsletter folder at /data (`-v "$PWD:/data"`).
    assert image.workdir == PurePosixPath("/data")
    timezone = _volume(image.path("/data"), "30 6 * * TUE")

    shown = schedule_next(image, "--json")
    assert shown.returncode == 0, shown.stderr
    times = [(datetime.fromisoformat(t["local"]), datetime.fromisoformat(t["utc"]))
             for t in json.loads(shown.stdout)]
    assert len(times) == 5
    zone = ZoneInfo(timezone)
    walls = [local.astimezone(zone).replace(tzinfo=None) for local, _ in times]
    for (local, utc), wall in zip(times, walls, strict=True):
        assert local == utc and utc.utcoffset() == timedelta(0)
        assert (wall.weekday(), wall.hour, wall.minute) == (1, 6, 30), wall
    assert all(b - a == timedelta(days=7) for a, b in pairwise(walls))

    table = schedule_next(image)
    assert table.returncode == 0, table.stderr
    assert f"30 6 * * TUE ({timezone}), mode auto" in table.stdout
    assert len(re.findall(r"Tue \d{4}-\d\d-\d\d 06:30", table.stdout)) == 5, table.stdout


def _without_copy_of(source: str) -> str:
    text = DOCKERFILE.read_text(encoding="utf-8")
    mutated, count = re.subn(rf"(?m)^COPY {re.escape(source)} \S+\n", "", text)
    assert count == 1, f"the Dockerfile has one `COPY {source} …` line"
    return mutated


def test_a_folder_missing_from_copy_fails_the_build(tmp_path: Path) -> None:
    """The check above is honest: drop a COPY line and the same helper fails, here at the
    RUN line (hatchling's force-include names the folder)."""
    with pytest.raises(ImageBuildError, match=r"(?s)RUN .*Forced include not found: .*templates"):
        build_image(_without_copy_of("templates"), REPO, tmp_path / "image")


def test_sources_missing_from_copy_fail_the_command(tmp_path: Path) -> None:
    """Without `src` the RUN line still succeeds (an empty wheel with an `ainews` script):
    only running the command shows the image is broken."""
    broken = build_image(_without_copy_of("src"), REPO, tmp_path / "image")
    _volume(broken.path("/data"), "0 8 * * MON")
    done = schedule_next(broken)
    assert done.returncode != 0
    assert "No module named 'ainews_newsletter" in done.stderr, done.stderr


def test_parser_reads_the_forms_a_dockerfile_uses() -> None:
    parsed = parse_dockerfile(
        "# syntax comment\n"
        "FROM python:3.11-slim\n"
        "WORKDIR /app\n"
        "COPY a.toml \\\n"
        "  # a comment inside the continuation\n"
        "\n"
        "  b.md ./\n"
        "ENV A=1 B=\"two words\" \\\n"
        "    C=/x/y\n"
        "ENV D old form value\n"
        "RUN pip install \\\n"
        "    --no-cache-dir .\n"
        'ENTRYPOINT ["ainews"]\n'
        'CMD ["schedule", "run"]\n')
    assert parsed.base == "python:3.11-slim"
    assert [(s.keyword, s.line) for s in parsed.steps] == [
        ("WORKDIR", 3), ("COPY", 4), ("ENV", 8), ("ENV", 10), ("RUN", 11)]
    assert _copy_args(parsed.steps[1]) == (["a.toml", "b.md"], "./")
    assert parse_env(parsed.steps[2].args) == {"A": "1", "B": "two words", "C": "/x/y"}
    assert parse_env(parsed.steps[3].args) == {"D": "old form value"}
    assert shlex.split(parsed.steps[4].args) == ["pip", "install", "--no-cache-dir", "."]
    assert parsed.entrypoint + parsed.cmd == ["ainews", "schedule", "run"]
    with pytest.raises(DockerfileError, match="exec"):
        parse_dockerfile("FROM python:3.11\nCMD ainews schedule run\n")
    with pytest.raises(DockerfileError, match="USER is not modelled"):
        parse_dockerfile("FROM python:3.11\nUSER ainews\n")


# -- the systemd unit ----------------------------------------------------------------------

def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: [Section], Key=value (repeatable), # and ; comments, `\\`."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
            continue
        key, sep, value = stripped.partition("=")
        assert sep and current is not None, f"not a unit line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_environment_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd reads an EnvironmentFile (comments, quotes)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = " ".join(shlex.split(value))
    return values


def _service() -> dict[str, str]:
    service = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    for key in ("ExecStart", "User", "WorkingDirectory", "EnvironmentFile"):
        assert len(service.get(key, [])) == 1, f"[Service] has one {key}="
    return {key: values[-1] for key, values in service.items()}


def _documented_steps() -> list[str]:
    """The commands in the unit's header comment (indented comment lines)."""
    header = UNIT.read_text(encoding="utf-8").split("\n[", 1)[0]
    return [line[1:].strip() for line in header.splitlines() if line.startswith("#   ")]


def test_unit_paths_are_made_by_its_documented_steps() -> None:
    service = _service()
    steps = "\n".join(_documented_steps())
    argv = shlex.split(service["ExecStart"].lstrip("-@:+!"))
    assert argv[-2:] == ["schedule", "run"]
    venvs = re.findall(r"python3 -m venv (/\S+)", steps)
    assert [f"{venv}/bin/ainews" for venv in venvs] == [argv[0]], (
        "ExecStart runs the ainews of the venv the header creates")
    assert re.search(r"/bin/pip install .*'\.\[postgres\]'", steps)
    assert service["User"] != "root"
    assert re.search(rf"useradd .*\b{re.escape(service['User'])}$", steps, re.MULTILINE)
    workdir = service["WorkingDirectory"].lstrip("-")
    assert re.search(rf"install -d .*{re.escape(workdir)}\b", steps)
    config = argv[argv.index("--config") + 1]
    assert PurePosixPath(config).parent == PurePosixPath(workdir), (
        "WorkingDirectory is the folder with config.toml")
    environment_file = service["EnvironmentFile"].lstrip("-")
    assert re.search(rf"install .*{re.escape(environment_file)}$", steps, re.MULTILINE)


def test_docs_name_the_units_environment_file() -> None:
    docs = (REPO / "docs" / "scheduling.md").read_text(encoding="utf-8")
    section = docs.split("## systemd", 1)[1].split("\n## ", 1)[0]
    environment_file = _service()["EnvironmentFile"].lstrip("-")
    assert environment_file in section, (
        f"docs/scheduling.md's 'systemd' says where the secrets go: {environment_file}")


@pytest.mark.clock
def test_unit_command_runs_in_the_documented_layout(image: Image, tmp_path: Path) -> None:
    service = _service()
    layout = tmp_path / "host"  # stands for the server's /

    def host(path: str) -> Path:
        return _under(layout, PurePosixPath(path))

    argv = shlex.split(service["ExecStart"].lstrip("-@:+!"))
    # `python3 -m venv /opt/ainews && /opt/ainews/bin/pip install '.[postgres]'`: the same
    # install as the image's, so its venv stands for it.
    venv = host(re.findall(r"python3 -m venv (/\S+)", "\n".join(_documented_steps()))[0])
    venv.parent.mkdir(parents=True)
    venv.symlink_to(image.python_prefix, target_is_directory=True)
    program = host(argv[0])
    assert program.is_file() and os.access(program, os.X_OK), f"{argv[0]} after the install"

    workdir = service["WorkingDirectory"].lstrip("-")
    timezone = _volume(host(workdir), "0 8 * * MON")
    environment_file = host(service["EnvironmentFile"].lstrip("-"))
    environment_file.parent.mkdir(parents=True)
    # A secret as the header says, and a setting that shows the file was read.
    environment_file.write_text("# secrets only\nAINEWS_SMTP__PASSWORD=not-a-real-secret\n"
                                "AINEWS_SCHEDULE__MODE='draft'\n", encoding="utf-8")
    env = {"PATH": _SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(host(workdir)),
           "USER": service["User"],
           **parse_environment_file(environment_file.read_text(encoding="utf-8"))}
    # ExecStart runs `schedule run`, which blocks: run `schedule next` with the same
    # --config instead (the same config loading, environment and install).
    command = [str(program), *(str(host(a)) if a.startswith("/") else a for a in argv[1:-1]),
               "next"]
    done = subprocess.run(command, cwd=host(workdir), env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"0 8 * * MON ({timezone}), mode draft" in done.stdout
    assert len(re.findall(r"Mon \d{4}-\d\d-\d\d 08:00", done.stdout)) == 5, done.stdout
