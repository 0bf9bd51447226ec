"""The configs `plano-trio init` writes: Plano's five templates, plus our quick-start example.

The YAML files beside this module are package data (the wheel and the
zipapp carry them): Plano's templates reproduced with their attribution, and
the ids, titles and descriptions are Plano's (`cli/planoai/init_cmd.py`), so
`plano-trio init --template coding_agent_routing` writes what `planoai init
--template coding_agent_routing` writes.  `quickstart` is ours: the
repository's `config.example.yaml`, whose demo model answers with no key and
no network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

QUICKSTART = "quickstart"
EXAMPLE_CONFIG = "config.example.yaml"


class Template(NamedTuple):
    id: str
    title: str
    description: str

    def text(self) -> str:
        """The template's YAML."""
        if self.id == QUICKSTART:
            return _example_config().read_text("utf-8")
        return (resources.files(__name__) / f"{self.id}.yaml").read_text("utf-8")


TEMPLATES: tuple[Template, ...] = (
    Template(
        QUICKSTART, "Quick start", "the example config: an offline demo model, providers keyed by the client"
    ),
    Template(
        "sub_agent_orchestration", "Sub Agent Orchestration", "multi-agent routing across specialized agents"
    ),
    Template(
        "coding_agent_routing", "Coding Agent Routing", "routing preferences + model aliases for coding tasks"
    ),
    Template(
        "preference_aware_routing",
        "Preference-aware LLM routing",
        "automatic LLM routing based on preferences",
    ),
    Template(
        "filter_chain_guardrails",
        "Guardrails via Filter Chains",
        "input guards, query rewrite, and context building",
    ),
    Template(
        "conversational_state_v1_responses",
        "Conversational State via v1/responses",
        "stateful responses with memory-backed storage",
    ),
)
BY_ID = {template.id: template for template in TEMPLATES}


def _example_config() -> Path:
    """`config.example.yaml`: inside the installed package (the wheel puts it there), else at the root of
    the source tree this module runs from."""
    packaged = resources.files("plano_trio") / EXAMPLE_CONFIG
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / EXAMPLE_CONFIG
