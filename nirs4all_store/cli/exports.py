"""The commands that write files or serve: export-chain, export-predictions, predict, report,
ui.

One path rule, the API's: a path given on the command line is relative to the current
folder; without one, files go to the workspace's `exports/` folder. Every command prints the
absolute path it wrote.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.output import emit, output_path, short
from nirs4all_store.cli.workspace import find_id, find_run, open_store, require_workspace, store_url
from nirs4all_store.durable import atomic_write
from nirs4all_store.workbench.exports import export_file_name
from nirs4all_store.workbench.training.dataset_files import DELIMITER


def _chain_of_pipeline(store: Any, pipeline_id: str) -> str:
    """The chain of a pipeline (its best cross-validated one when it has several)."""
    best = store.top_predictions(1, pipeline_id=pipeline_id, fold_id="avg").to_pylist()
    if best and best[0].get("chain_id"):
        return str(best[0]["chain_id"])
    chains = store.get_chains_for_pipeline(pipeline_id).column("chain_id").to_pylist()
    if not chains:
        raise CliError(f"pipeline {pipeline_id} has no chain (did it fail? see `{PROG} show`)")
    return str(chains[0])


def _chosen_chain(args: argparse.Namespace, store: Any) -> str:
    from nirs4all_store.cli.workspace import run_result

    if args.run:
        try:
            return str(run_result(store, find_run(store, args.run)).best["chain_id"])
        except LookupError as exc:
            raise CliError(str(exc)) from None
    if args.pipeline:
        return _chain_of_pipeline(store, find_id(store, "pipeline", args.pipeline))
    if args.prediction:
        row = store.get_prediction(find_id(store, "prediction", args.prediction)) or {}
        if not row.get("chain_id"):
            raise CliError(f"prediction {args.prediction!r} has no chain to export")
        return str(row["chain_id"])
    if args.chain_id:
        return find_id(store, "chain", args.chain_id)
    raise CliError(
        "give a CHAIN_ID, --run RUN_ID (its best chain), --pipeline ID or --prediction ID"
    )


def cmd_export_chain(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        chain_id = _chosen_chain(args, store)
        # a stored id never names a path outside exports/ (a chain id may hold "../")
        default = store.exports_path() / export_file_name(chain_id, ".n4a")
        output = output_path(args.output) or default
        path = Path(store.export_chain(chain_id, output)).resolve()
    emit(args, {"chain_id": chain_id, "bundle": str(path)}, f"exported chain {chain_id} to {path}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {}
    for name in ("dataset_name", "partition", "fold_id"):
        if getattr(args, name) is not None:
            filters[name] = getattr(args, name)
    with open_store(args) as store:
        if args.run:
            filters["run_id"] = find_run(store, args.run)["run_id"]
        if args.pipeline:
            filters["pipeline_id"] = find_id(store, "pipeline", args.pipeline)
        run_id = filters.pop("run_id", None)
        if store.query_predictions(run_id=run_id, limit=1, **filters).num_rows == 0:
            shown = {**filters, **({"run_id": run_id} if run_id else {})}
            raise CliError(f"no prediction matches {shown or 'the workspace'}: nothing written")
        if run_id is not None:
            filters["run_id"] = run_id
        output = output_path(args.output) or (store.exports_path() / "predictions.parquet")
        path = store.export_predictions_parquet(output, include_arrays=args.arrays, **filters)
    path = Path(path).resolve()
    emit(args, {"parquet": str(path)}, f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import load_bundle
    from nirs4all_store.workbench.training.dataset_files import (
        DatasetError,
        read_spectra_with_ids,
    )

    csv_path = Path(args.csv).expanduser()
    if not csv_path.is_file():
        raise CliError(f"{csv_path.resolve()}: no such file; expected a ;-separated CSV of spectra")
    bundle_path = Path(args.bundle).expanduser()
    if not bundle_path.is_file():
        raise CliError(f"{bundle_path.resolve()}: no such bundle file")
    try:
        table = read_spectra_with_ids(csv_path, getattr(args, "id_column", None))
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    try:  # the header row's wavelengths must be the bundle's axis (SpectralAxisError)
        y_hat = np.asarray(load_bundle(bundle_path).predict(table.values, table.wavelengths))
    except ValueError as exc:
        raise CliError(f"{csv_path}: {exc}") from None
    values = y_hat.reshape(len(y_hat), -1)[:, 0]
    texts = [repr(v.item()) for v in values]
    data: dict[str, Any] = {"n": len(y_hat), "predictions": values.tolist()}
    if table.ids is not None:
        data.update(id_column=table.id_name, ids=table.ids)
    if args.output:
        out = output_path(args.output)
        assert out is not None
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, _predictions_csv(texts, table.ids, table.id_name, header=True))
        emit(args, {"output": str(out), **data}, f"wrote {len(y_hat)} predictions to {out}")
    else:
        lines = _predictions_csv(texts, table.ids, table.id_name, header=False)
        emit(args, {"output": None, **data}, lines.decode("utf-8").rstrip("\n"))
    return 0


def _predictions_csv(
    texts: list[str], ids: list[str] | None, id_name: str | None, *, header: bool
) -> bytes:
    """`y_pred` lines, with the id column first (`;`-separated, quoted when needed) when the
    input had one; the header row only for a file."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=DELIMITER, lineterminator="\n")
    if header:
        writer.writerow(["y_pred"] if ids is None else [id_name or "id", "y_pred"])
    rows = (
        [[t] for t in texts] if ids is None else [[i, t] for i, t in zip(ids, texts, strict=True)]
    )
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.report import (
        PlotDependencyError,
        require_matplotlib,
        write_report,
    )

    try:
        require_matplotlib()  # before touching the workspace
    except PlotDependencyError as exc:
        raise CliError(str(exc)) from None
    with open_store(args) as store:
        run = find_run(store, args.run_id)
        default = store.exports_path() / export_file_name(f"report_{short(run['run_id'])}", ".html")
        output = output_path(args.output) or default
        path = write_report(store, run["run_id"], output, n_plots=args.plots).resolve()
    emit(args, {"run_id": run["run_id"], "report": str(path)}, f"wrote {path}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    require_workspace(args)
    try:
        from nirs4all_store.workbench.dashboard import serve
    except ImportError as exc:  # the message carries `pip install "nirs4all-store[ui]"`
        raise CliError(str(exc)) from None
    serve(args.workspace, store_url(args), host=args.host, port=args.port, open_browser=args.open)
    return 0
