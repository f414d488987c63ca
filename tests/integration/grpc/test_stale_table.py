"""A function whose built route table is stale compiles its sources (config/artifact.py's
slow path), and there is no protoc in the Lambda layer: the descriptors `sam build` wrote
beside the protos stand in for it, as long as the protos are the ones they came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tollway.cli import main as tollway
from tollway.config.protos import COMPILED

from tests.grpc_backends import copy_protos
from tests.infra_files import write_infra

ROUTES = """\
- id: thing.get
  path: /v1/things/{id}
  methods: [GET]
  public: true
  backends:
    - {name: t, service: things, grpc: tollway.test.v1.Things/Get, body: {id: "{id}"}}
"""
# As on Lambda: grpcio-tools cannot be imported. Then load the table (stale) or compile.
PROBE = """\
import json, logging, sys
sys.modules["grpc_tools"] = None
from pathlib import Path
from tollway.config.artifact import load_or_compile
from tollway.config.errors import ConfigError
logging.basicConfig(level=logging.WARNING)
try:
    config = load_or_compile(Path(sys.argv[1]), "dev", {})
except ConfigError as exc:
    print(json.dumps({"problems": [str(p) for p in exc.problems]}))
else:
    print(json.dumps({"methods": [b.grpc.name for r in config.routes for b in r.backends]}))
"""


def built(tmp_path: Path) -> Path:
    source = copy_protos(write_infra(tmp_path / "src", {"things": "grpc://127.0.0.1:9"}, ROUTES))
    copy = tmp_path / "built"
    shutil.copytree(source, copy)
    assert tollway(["routes", "check", "--infra", str(source), "--write-table", str(copy)]) == 0
    assert (copy / "protos" / COMPILED).exists() and not (source / "protos" / COMPILED).exists()
    return copy


def probe(infra: Path) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(infra)], capture_output=True, text=True, check=True, env=os.environ
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_fresh_table_needs_no_protoc(tmp_path: Path) -> None:
    answer, log = probe(built(tmp_path))
    assert answer == {"methods": ["tollway.test.v1.Things/Get"]}
    assert "route table not used" not in log


def test_a_stale_table_compiles_the_sources_with_the_built_descriptors(tmp_path: Path) -> None:
    infra = built(tmp_path)
    with (infra / "gateway.yaml").open("a") as f:
        f.write("# changed after the build\n")
    answer, log = probe(infra)
    assert "route table not used" in log
    assert answer == {"methods": ["tollway.test.v1.Things/Get"]}


def test_protos_changed_after_the_build_are_a_problem_without_protoc(tmp_path: Path) -> None:
    infra = built(tmp_path)
    proto = infra / "protos" / "tollway" / "test" / "v1" / "things.proto"
    proto.write_text(proto.read_text() + "\n// changed\n")
    answer, _ = probe(infra)
    assert len(answer["problems"]) == 1
    assert "compiling the protos needs grpcio-tools" in answer["problems"][0]
