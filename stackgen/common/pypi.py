"""What stackgen knows of PyPI and pip's answers, on both sides: the one
index a lock comes from, pip's installation report (the file it chose for
each package) and the lines of a resolver's output that name a conflict."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from packaging.utils import canonicalize_name

INDEX_URL = "https://pypi.org/simple"


@dataclass(frozen=True)
class ReportedFile:
    """A distribution in pip's `install --dry-run --report`: the file pip chose."""

    name: str                       # canonical
    version: str
    url: str
    sha256: str
    requires_dist: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return unquote(self.url.rsplit("/", 1)[-1])


def parse_pip_report(text: str) -> list[ReportedFile]:
    """The files of a pip installation report, in its order."""
    out = []
    for item in json.loads(text)["install"]:
        meta, info = item["metadata"], item["download_info"]
        archive = info.get("archive_info", {})
        sha256 = archive.get("hashes", {}).get("sha256") or archive["hash"].split("=", 1)[1]
        out.append(ReportedFile(canonicalize_name(meta["name"]), meta["version"],
                                info["url"].split("#")[0], sha256,
                                tuple(meta.get("requires_dist", []))))
    return out


def conflict_lines(output: str) -> list[str]:
    """The lines of pip's, pip-tools' or uv's output that name what clashes."""
    lines = [ln.rstrip() for ln in output.splitlines()]
    picked: list[str] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if "The conflict is caused by:" in text:
            for follow in lines[i + 1:]:
                if not follow.startswith(" ") or not follow.strip():
                    break
                picked.append(follow.strip())
        elif re.search(r"No matching distribution found for|Could not find a version that satisfies", text):
            picked.append(re.sub(r"^ERROR:\s*", "", text))
        elif "No solution found when resolving" in text:
            for follow in lines[i + 1:i + 12]:
                cleaned = follow.strip().lstrip("╰─▶│ ").strip()
                if cleaned and not cleaned.startswith(("hint:", "help:")):
                    picked.append(cleaned)
        elif text.startswith(("ERROR: Cannot install", "× No solution")):
            picked.append(text.replace("ERROR: ", "").replace("× ", ""))
    picked += _requirement_information(output)
    return list(dict.fromkeys(picked))[:10]


_NOT_FOUND = (
    # uv: "Because X was not found in the package registry and you require X==1.0, ..."
    re.compile(r"Because (\S+?) was not found in the package registry"),
    # pip (pip-tools): "... requirement X==1.0 (from versions: none)"
    re.compile(r"Could not find a version that satisfies the requirement (\S+?)(?:[<>=!~;\[ ]\S*)? "
               r"\(from versions: none\)"),
)


def unfound_projects(output: str) -> list[str]:
    """Canonical names a resolver found no release of at all: projects that may
    not exist (pip also says so of a project with no file for the Python)."""
    flat = re.sub(r"[\s│╰─▶]+", " ", output)      # uv wraps its sentences, with tree marks
    names = [canonicalize_name(m.group(1)) for pattern in _NOT_FOUND for m in pattern.finditer(flat)]
    return sorted(set(names))


_INFO = re.compile(r"RequirementInformation\(requirement=\w+Requirement\('([^']+)'\), "
                   r"parent=(None|\w+Candidate\('([^' ]+))")


def _requirement_information(output: str) -> list[str]:
    """pip's ResolutionImpossible repr, as sentences: who asks for what."""
    out = []
    for requirement, parent, link in _INFO.findall(output):
        if parent == "None":
            out.append(f"stack.yaml asks for {requirement}")
        else:
            dist = link.rsplit("/", 1)[-1]
            name, _, rest = dist.partition("-")
            version = rest.split("-")[0].removesuffix(".tar.gz").removesuffix(".zip")
            out.append(f"{name} {version} requires {requirement}")
    return out
