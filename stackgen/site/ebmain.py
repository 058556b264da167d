"""EasyBuild's main as `stackgen build` runs it: easybuild.main, with three
of its costs cut where stackgen already knows the answer, each giving
what EasyBuild's own code gives:
- the calling class of each of its loggers' records is found by looking
  one frame up, not by inspect.stack(), which reads the source of every
  frame on the stack (0.1 to 0.2 s of CPU in each run's start, four runs
  side by side on a build host's cores);
- the sha256 of a source that stackgen verified (DigestMemo, named by the
  build's contract) and that is unchanged since is taken from that record,
  not computed again (the jupyterlab module's 97 wheels: 0.3 s before its
  install can start). Any other file is hashed as EasyBuild hashes it;
- the easyconfig kept for reproduction (easybuild/reprod/ of the install) is
  the file stackgen rendered, copied as it is, not dumped again: the dump
  looks for comments by turning the whole value of a parameter into a
  string for every line of it, quadratic in the parameter's size (the
  jupyterlab module's 1,700 lines, its npm tree among them: 0.25 to 0.45 s
  before its install can start). The rendered file is explicit already
  (no templates, toolchain SYSTEM); the easyblocks and hooks are kept as
  EasyBuild keeps them."""

import runpy
import sys

from easybuild.base import fancylogger
from easybuild.framework import easyblock
from easybuild.tools.filetools import CHECKSUM_TYPE_SHA256, compute_checksum, copy_file

from stackgen.common.download import DigestMemo
from stackgen.site.easyblocks.contract import BuildContract


def _calling_class_name(depth=2):
    """fancylogger._getCallingClassName, by sys._getframe: frame `depth` up
    from this one is what inspect.stack()[depth] names there."""
    try:
        return sys._getframe(depth).f_locals['self'].__class__.__name__
    except Exception:
        return "unknown__getCallingClassName"


def checksum_by(memo):
    """compute_checksum, answered by `memo` for the sha256 of a file it
    holds unchanged."""
    def checksum(path, checksum_type=CHECKSUM_TYPE_SHA256):
        if checksum_type == CHECKSUM_TYPE_SHA256:
            known = memo.known(path, 'sha256')
            if known:
                return known[len('sha256:'):]
        return compute_checksum(path, checksum_type=checksum_type)
    return checksum


def reproduce_build_with_copy(app, reprod_dir_root):
    """easyblock.reproduce_build, its easyconfig copied from the file it was read from."""
    cfg = app.cfg
    cfg.dump = lambda path, **kwargs: copy_file(cfg.path, path)    # shadows EasyConfig.dump
    try:
        return _reproduce_build(app, reprod_dir_root)
    finally:
        del cfg.dump


_reproduce_build = easyblock.reproduce_build


def main():
    fancylogger._getCallingClassName = _calling_class_name
    easyblock.reproduce_build = reproduce_build_with_copy
    memo = BuildContract.from_environ().digest_memo
    if memo:
        easyblock.compute_checksum = checksum_by(DigestMemo(memo))
    runpy.run_module("easybuild.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
