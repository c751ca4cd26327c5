"""The site's JavaScript renderers, fetched from the npm registry so that pages work offline.

The lessons show formulas (MathJax) and diagrams (mermaid). Loaded from a CDN, a reader
without network sees raw ``\\[ ... \\]`` and no diagram; so the site ships both scripts
(ADR 0003). They are not committed: this script fetches the pinned npm packages with
``npm pack`` (the ordinary npm client, so a proxy or mirror set in npm's configuration
is used), checks each tarball against its pinned sha512, and unpacks the files the site
needs into ``docs/javascripts/vendor/`` (ignored by git), which ``docs/hooks.py`` then
publishes like any other file under ``docs/``. One patch follows the check: the CDN addresses
compiled into MathJax's speech code as fallbacks (never used: MathJax points the speech engine
at its own ``sre/`` folder) are rewritten to a scheme no browser fetches, so nothing the site
ships names another host (``Package.rewrites``).

    python docs/assets.py            # fetch what is missing or of another version
    python docs/assets.py --check    # exit 1 unless everything is in place
    python docs/assets.py --force    # fetch again

``make install`` runs it, and the docs build calls ``ensure()`` before every build, so a
fresh clone needs nothing more than ``npm`` on the PATH (and the registry) the first time.

To upgrade: change a version in ``PACKAGES``, run ``npm pack NAME@VERSION --json``, copy
its ``integrity`` here, run this script and the browser test (``tests/test_docs_site.py``).
Standard library only.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "docs" / "javascripts" / "vendor"
STAMP = "versions.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str                 # npm's "sha512-<base64>" of the tarball
    files: tuple[str, ...]         # paths inside the tarball's package/ folder; "dir/" takes a folder
    strip: str                     # prefix removed from those paths
    entry: str                     # the script the pages load, relative to the package's folder
    licence: str
    rewrites: tuple[tuple[str, str], ...] = ()   # (old, new) in every .js file, after the integrity check

    @property
    def folder(self) -> Path:
        return VENDOR / self.name


PACKAGES = (
    # MathJax 3 (Apache-2.0): the combined TeX+MathML -> CommonHTML build, its woff fonts, and the
    # folders its loader fetches on demand (TeX extensions, the menu, accessibility).
    Package("mathjax", "3.2.2",
            "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
            ("LICENSE", "es5/tex-mml-chtml.js", "es5/input/", "es5/output/chtml/", "es5/a11y/",
             "es5/ui/", "es5/sre/", "es5/adaptors/"),
            "es5/", "tex-mml-chtml.js", "Apache-2.0",
            # speech-rule-engine's default map URL and two Internet Explorer helpers: dead fallbacks
            (("https://cdn.jsdelivr.net/npm/", "offline-only:npm/"),)),
    # mermaid 11 (MIT): the self-contained browser build that mkdocs-material uses when it finds
    # a global `mermaid` (it would otherwise load mermaid@11 from a CDN).
    Package("mermaid", "11.17.2",
            "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
            ("LICENSE", "dist/mermaid.min.js"),
            "dist/", "mermaid.min.js", "MIT"),
)

# What the pages load, relative to VENDOR (mkdocs.yml extra_javascript names these paths).
ENTRY_POINTS = tuple(f"{p.name}/{p.entry}" for p in PACKAGES)


class AssetError(RuntimeError):
    """The scripts are missing and cannot be fetched; the message says what to do."""


def _stamp() -> dict:
    try:
        return json.loads((VENDOR / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def missing() -> list[str]:
    """The packages not in place: absent, of another version, or without their entry point."""
    stamp = _stamp()
    return [f"{p.name}@{p.version}" for p in PACKAGES
            if stamp.get(p.name) != _stamp_of(p) or not (p.folder / p.entry).is_file()]


def _stamp_of(pkg: Package) -> dict:
    """What the stamp records of a package in place; a changed patch (its hash) fetches it again."""
    patch = hashlib.sha256(json.dumps(pkg.rewrites).encode()).hexdigest()[:16] if pkg.rewrites else None
    return {"version": pkg.version, "integrity": pkg.integrity, "patch": patch}


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("the docs site needs MathJax and mermaid from the npm registry, and `npm` is not "
                         "on the PATH: install Node.js and npm (Debian: apt-get install npm), then run "
                         "python docs/assets.py")
    return npm


def _pack(pkg: Package, workdir: Path) -> Path:
    """``npm pack NAME@VERSION`` into ``workdir``; returns the tarball, its integrity checked."""
    cmd = [_npm(), "pack", f"{pkg.name}@{pkg.version}", "--json", "--pack-destination", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=600)
    if proc.returncode != 0:
        raise AssetError(f"`{' '.join(cmd[1:4])}` failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    name = json.loads(proc.stdout)[0]["filename"]
    tarball = workdir / name
    got = _integrity(tarball.read_bytes())
    if got != pkg.integrity:
        raise AssetError(f"{pkg.name}@{pkg.version}: the tarball's sha512 is {got}, expected {pkg.integrity}; "
                         "refusing to use it")
    return tarball


def _unpack(pkg: Package, tarball: Path, dest: Path) -> int:
    """Copy the selected files of the tarball to ``dest``; returns how many."""
    count = 0
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            inner = member.name[len("package/"):]
            if not any(inner == f or (f.endswith("/") and inner.startswith(f)) for f in pkg.files):
                continue
            rel = inner[len(pkg.strip):] if inner.startswith(pkg.strip) else inner
            target = (dest / rel).resolve()
            if not str(target).startswith(str(dest.resolve()) + os.sep):
                raise AssetError(f"{pkg.name}: unsafe path in tarball: {member.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                if pkg.rewrites and rel.endswith(".js"):
                    data = src.read()
                    for old, new in pkg.rewrites:
                        data = data.replace(old.encode(), new.encode())
                    out.write(data)
                else:
                    shutil.copyfileobj(src, out)
            count += 1
    return count


def fetch(force: bool = False, log=print) -> list[str]:
    """Fetch every package that is missing (or all, with ``force``); returns what was fetched."""
    todo = [p for p in PACKAGES if force or f"{p.name}@{p.version}" in missing()]
    if not todo:
        return []
    VENDOR.mkdir(parents=True, exist_ok=True)
    stamp = _stamp()
    with tempfile.TemporaryDirectory(prefix="mini-nanochat-assets-") as tmp:
        for pkg in todo:
            log(f"fetching {pkg.name}@{pkg.version} from the npm registry (docs/assets.py)")
            tarball = _pack(pkg, Path(tmp))
            staging = Path(tmp) / f"{pkg.name}-files"
            n = _unpack(pkg, tarball, staging)
            if pkg.folder.exists():
                shutil.rmtree(pkg.folder)
            os.replace(staging, pkg.folder)   # all or nothing: a crash leaves the old folder or none
            stamp[pkg.name] = _stamp_of(pkg)
            (VENDOR / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
            log(f"  {n} files -> {pkg.folder.relative_to(REPO)} ({pkg.licence})")
    return [f"{p.name}@{p.version}" for p in todo]


def ensure(log=print) -> None:
    """Make sure the scripts are in place (fetching them if needed); raises AssetError if it cannot."""
    if missing():
        fetch(log=log)
    left = missing()
    if left:
        raise AssetError(f"still missing after fetching: {', '.join(left)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/assets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 unless every script is in place")
    parser.add_argument("--force", action="store_true", help="fetch again even if in place")
    args = parser.parse_args(argv)
    if args.check:
        left = missing()
        print(f"missing: {', '.join(left)}; run python docs/assets.py" if left else "every script is in place")
        return 1 if left else 0
    try:
        fetched = fetch(force=args.force)
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not fetched:
        print("every script is in place: " + ", ".join(f"{p.name}@{p.version}" for p in PACKAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
