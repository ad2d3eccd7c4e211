"""Fetch the JVM artifacts in :mod:`tone.jars` from Maven Central with ``mvn`` (run by `make setup`).

``python -m devstack.jars`` fetches every set into the jar cache (``TONE_JARS_DIR``) unless it is there already.
A set is written to a temporary directory and renamed into place with a ``.complete`` marker, so a failed or
interrupted fetch never leaves a half set that later runs would trust.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tone.errors import ToneError
from tone.jars import COMPLETE, JarSet, kafka_broker, local_filesystem, spark_kafka_connector

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.tweet-tone</groupId><artifactId>jars</artifactId><version>1</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
DEPENDENCY = "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"


def pom(jars: JarSet) -> str:
    """A throw-away POM that depends on the set's coordinates."""
    deps = []
    for coordinate in jars.coordinates:
        group, artifact, version = coordinate.split(":")
        deps.append(DEPENDENCY.format(g=group, a=artifact, v=version))
    return POM.format(dependencies="\n".join(deps))


def fetch(jars: JarSet, jars_dir: Path, say: Callable[[str], None] = print) -> Path:
    """Fetch one set into ``jars_dir`` (idempotent); returns its directory."""
    target = Path(jars_dir) / jars.dirname
    if (target / COMPLETE).is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "mvn is not installed: apt-get install -y maven (make setup does this when run as root)"
        raise ToneError(msg)
    Path(jars_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jars_dir, prefix=f".{jars.dirname}-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(pom(jars))
        out = work / "lib"
        cmd = [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
        if jars.only:
            cmd.append(f"-DincludeArtifactIds={','.join(jars.only)}")
        say(f"fetching {', '.join(jars.coordinates)} with Maven into {target}")
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0 or not list(out.glob("*.jar")):
            msg = f"mvn could not fetch {jars.coordinates}: {(result.stdout + result.stderr).strip()[-1500:]}"
            raise ToneError(msg)
        (out / COMPLETE).write_text("\n".join(jars.coordinates) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        out.rename(target)
    return target


def main() -> int:
    """Fetch every set the project runs into the configured jar cache."""
    from tone.settings import get_settings

    jars_dir = get_settings().jars_dir
    try:
        for jars in (kafka_broker(), spark_kafka_connector(), local_filesystem()):
            fetch(jars, jars_dir)
    except ToneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
