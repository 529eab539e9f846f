"""``membank eval retrieval``: recall@1/5/10, MRR, all-evidence recall@10 and latency per
category and search mode, on the shipped conversational suite and the 60-question set.

Each run starts a scratch store (a temporary Edge folder, a throwaway qdrant-client
local collection, or a schema of its own in the configured PostgreSQL, dropped
after), writes the suite's memories with their real times, and asks every question
in each mode with the server's search settings (the options below override the
hybrid ones). The embedder is the configured one; each distinct text is embedded once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from membank_cli.application import Application
from membank_cli.eval.conversations import DEFAULT_ROOT, as_eval_suite, load_suite
from membank_cli.eval.quality import DEFAULT_QUALITY_SET, load_quality_set
from membank_cli.output import Output
from membank_server.domain.retrieval import FusionMethod, RetrievalChoice, SearchMode
from membank_server.services.evaluation import (
    EvalSuite,
    MemoEmbedder,
    ModeReport,
    evaluate,
    load_suite_into,
)

__all__ = ["EvalPlan", "retrieval", "run_plan"]

BACKENDS = ("edge", "qdrant", "pgvector")
_Result = tuple[EvalSuite, list[ModeReport]]


@dataclass(frozen=True)
class EvalPlan:
    """What one ``membank eval retrieval`` measures, from its options."""

    data: Path | None = DEFAULT_ROOT
    quality_set: Path | None = DEFAULT_QUALITY_SET
    modes: tuple[SearchMode, ...] = tuple(SearchMode)
    backend: str = "edge"
    #: Overrides of the hybrid run (None: the settings' search defaults).
    fusion: FusionMethod | None = None
    rrf_k: int | None = None
    dense_depth: int | None = None
    lexical_depth: int | None = None
    dense_weight: float | None = None
    #: Hits scored per question.
    depth: int = 10

    def runs(self) -> dict[str, RetrievalChoice]:
        hybrid = RetrievalChoice(
            mode=SearchMode.HYBRID,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            dense_depth=self.dense_depth,
            lexical_depth=self.lexical_depth,
            dense_weight=self.dense_weight,
        )
        return {
            m.value: hybrid if m is SearchMode.HYBRID else RetrievalChoice(mode=m)
            for m in self.modes
        }

    def suites(self) -> list[EvalSuite]:
        found = []
        if self.data is not None:
            found.append(as_eval_suite(load_suite(self.data), "conversations"))
        if self.quality_set is not None:
            found.append(load_quality_set(self.quality_set))
        return found


def scratch_settings(backend: str, folder: Path) -> dict[str, str]:
    """Settings that put the store of ``backend`` somewhere fresh under ``folder``."""
    if backend not in BACKENDS:
        raise typer.BadParameter(f"choose one of {', '.join(BACKENDS)}", param_hint="--backend")
    run = f"membank_eval_{os.getpid()}"
    return {
        "MEMBANK_STORAGE__BACKEND": backend,
        "MEMBANK_STORAGE__EDGE__PATH": str(folder / "edge"),
        "MEMBANK_STORAGE__QDRANT__PATH": str(folder / "qdrant"),
        "MEMBANK_STORAGE__QDRANT__URL": "",
        "MEMBANK_STORAGE__QDRANT__COLLECTION": run,
        "MEMBANK_STORAGE__POSTGRES__SCHEMA": run,
    }


def run_plan(app: Application, plan: EvalPlan) -> list[_Result]:
    """Every suite of the plan on a scratch store each (the settings point at it)."""
    suites = plan.suites()
    embedder = MemoEmbedder(app.embedder())

    async def work() -> list[_Result]:
        await app.started(embedder)
        results = []
        for suite in suites:
            store = await app.single_store(plan.backend)
            try:
                service = app.memory_service(store, embedder)
                with app.status(f"{suite.name}: writing {len(suite.memories):,} memories"):
                    keys = await load_suite_into(service, suite)
                with app.status(f"{suite.name}: {len(suite.questions):,} questions per mode"):
                    # Embedded before the clock: every mode's latency is its search alone.
                    await embedder.embed([q.text for q in suite.questions])
                    reports = await evaluate(service, suite, keys, plan.runs(), depth=plan.depth)
                results.append((suite, reports))
            finally:
                await store.drop()
        return results

    return app.run(work)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render(out: Output, results: list[_Result]) -> None:
    for suite, reports in results:
        out.table(
            f"{suite.name}: {len(suite.memories):,} memories, {len(suite.questions):,} questions",
            ["category", "mode", "n", "R@1", "R@5", "R@10", "MRR", "all@10", "empty"],
            [
                (
                    category,
                    r.name,
                    row["questions"],
                    _pct(row["recall@1"]),
                    _pct(row["recall@5"]),
                    _pct(row["recall@10"]),
                    f"{row['mrr']:.3f}",
                    _pct(row["all@10"]),
                    row["empty"],
                )
                for category in ("all", *suite.categories)
                for r in reports
                for row in (r.scores[category].row(),)
            ],
        )
        out.table(
            f"{suite.name}: search latency through the service (query embeddings made before)",
            ["mode", "p50 ms", "p95 ms"],
            [
                (r.name, f"{r.latency()['p50_ms']:.2f}", f"{r.latency()['p95_ms']:.2f}")
                for r in reports
            ],
        )


def as_json(results: list[_Result]) -> list[dict[str, Any]]:
    return [
        {
            "suite": suite.name,
            "memories": len(suite.memories),
            "questions": len(suite.questions),
            "modes": {
                r.name: {
                    "categories": {c: s.row() for c, s in r.scores.items()},
                    **r.latency(),
                }
                for r in reports
            },
        }
        for suite, reports in results
    ]


def retrieval(
    ctx: typer.Context,
    data: Path = typer.Option(DEFAULT_ROOT, help="The conversational suite's folder."),
    quality_set: Path = typer.Option(DEFAULT_QUALITY_SET, help="The 60-question set."),
    skip_quality: bool = typer.Option(False, help="Run the conversational suite only."),
    mode: list[SearchMode] = typer.Option(
        list(SearchMode), "--mode", "-m", help="dense, lexical, hybrid; repeat for several."
    ),
    backend: str = typer.Option("edge", help="edge, qdrant (local mode) or pgvector."),
    fusion: FusionMethod = typer.Option(None, help="Hybrid: rrf or weighted."),
    rrf_k: int = typer.Option(None, min=1, help="Hybrid: RRF's k."),
    dense_depth: int = typer.Option(None, min=1, max=1000, help="Hybrid: dense candidates."),
    lexical_depth: int = typer.Option(None, min=1, max=1000, help="Hybrid: lexical candidates."),
    dense_weight: float = typer.Option(None, min=0, max=1, help="Hybrid: the dense share."),
    json_out: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Score dense, lexical and hybrid search on the shipped retrieval suites."""
    app = Application.of(ctx)
    plan = EvalPlan(
        data=data,
        quality_set=None if skip_quality else quality_set,
        modes=tuple(dict.fromkeys(mode)),
        backend=backend,
        fusion=fusion,
        rrf_k=rrf_k,
        dense_depth=dense_depth,
        lexical_depth=lexical_depth,
        dense_weight=dense_weight,
    )
    with tempfile.TemporaryDirectory(prefix="membank-eval-") as tmp:
        app.override(scratch_settings(backend, Path(tmp)))
        results = run_plan(app, plan)
    if json_out:
        app.json(as_json(results))
    else:
        render(app, results)
