"""SWE task synthesis by bug injection: a repository with tests -> verified SWE instances.

`synthesize(SOURCE, out)` (CLI: `envfarm swe synthesize`) injects one small bug per
candidate into one function (AST mutation strategies, or a model's whole-function rewrite),
keeps the bugs that break some previously passing tests but not all, reliably, and writes
each as an SWE-bench-format instance whose gold `patch` undoes the bug. `set_up` sets up a
source's environment first (discovered test needs, retried on what pytest names);
`synthesize_many` runs a list of sources with a per-source setup report.
"""

from swe_tasks.synth.candidates import Candidate, generate
from swe_tasks.synth.env_setup import EnvSetup, SetupFailed, set_up
from swe_tasks.synth.many import synthesize_many
from swe_tasks.synth.mutations import STRATEGIES, Edit, Strategy
from swe_tasks.synth.pipeline import SynthConfig, SynthReport, synthesize
from swe_tasks.synth.rewriter import ChatModel, FunctionRewriter

__all__ = ["STRATEGIES", "Candidate", "ChatModel", "Edit", "EnvSetup", "FunctionRewriter",
           "SetupFailed", "Strategy", "SynthConfig", "SynthReport", "generate", "set_up",
           "synthesize", "synthesize_many"]
