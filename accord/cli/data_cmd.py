"""`accord data`: make the per-channel files each node imports."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from accord.data.uci import ScenarioSplit, load_uci_csv, split_by_channel, synthesize
from accord.errors import InvalidInput

app = typer.Typer(help="Scenario data for the nodes.", no_args_is_help=True)


def _coverage(value: str) -> str:
    if value not in ("full", "realistic"):
        raise InvalidInput(f"--coverage must be 'full' or 'realistic', not {value!r}")
    return value


def _report(split: ScenarioSplit, out: Path) -> None:
    split.write(out)
    table = Table(title=f"Channel files in {out}")
    table.add_column("party")
    table.add_column("customers", justify="right")
    table.add_column("columns")
    for name, t in split.tables.items():
        table.add_row(name, str(len(t)), ", ".join(t.columns))
    Console().print(table)


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for <party>.csv and .schema.json files."),
    customers: int = typer.Option(30_000, "--customers", help="How many brand customers."),
    coverage: str = typer.Option("full", "--coverage", help="full or realistic."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic generator."),
) -> None:
    """Generate seeded synthetic data shaped like the UCI credit scenario."""
    _report(split_by_channel(synthesize(customers, seed), _coverage(coverage)), out)  # type: ignore[arg-type]


@app.command("load")
def load(
    source: Path = typer.Option(..., "--source", help="UCI_Credit_Card.csv"),
    out: Path = typer.Option(..., "--out", help="Folder for <party>.csv and .schema.json files."),
    coverage: str = typer.Option("full", "--coverage", help="full or realistic."),
) -> None:
    """Split the real UCI credit data into one file per party, as DESIGN.md fixes it."""
    _report(split_by_channel(load_uci_csv(source), _coverage(coverage)), out)  # type: ignore[arg-type]


@app.command("cdnow")
def cdnow_files(
    out: Path = typer.Option(..., "--out", help="Folder for the parties' files."),
    source: Path | None = typer.Option(
        None, "--source", help="CDNOW_master.txt (default: the seeded synthetic log)."
    ),
    customers: int = typer.Option(2_000, "--customers", help="Synthetic log: how many customers."),
    seed: int = typer.Option(7, "--seed", help="Synthetic log: the generator's seed."),
    consents_seed: int | None = typer.Option(
        None,
        "--consents-seed",
        help="Also write <party>.consents.csv: seeded synthetic consent decisions.",
    ),
) -> None:
    """The LTV scenario (DESIGN.md, CDNOW omnichannel): each channel's own purchase log of the
    calibration period, and the brand's label file with every customer's holdout spend."""
    import datetime as dt

    from accord.data import cdnow
    from accord.data.consents import synthetic_decisions, write_decisions

    log = cdnow.load_cdnow(source) if source is not None else cdnow.synthesize(customers, seed)
    scenario = cdnow.build_scenario(log)
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"LTV scenario files in {out} (features as of {cdnow.CALIBRATION_END})")
    table.add_column("party")
    table.add_column("customers", justify="right")
    table.add_column("file")
    label = scenario.split().tables[cdnow.LABEL_CHANNEL]
    label.write(out)
    table.add_row(cdnow.LABEL_CHANNEL, str(len(label)), f"{label.channel}.csv ({cdnow.LABEL})")
    refs = {cdnow.LABEL_CHANNEL: label.refs}
    for channel, purchases in scenario.purchase_logs().items():
        path = purchases.write(out)
        refs[channel] = list(purchases.customers)
        table.add_row(
            channel,
            str(len(purchases.customers)),
            f"{path.name} ({len(purchases.purchases)} purchases)",
        )
    if consents_seed is not None:
        today = dt.date.today()
        for offset, (party, party_refs) in enumerate(refs.items()):
            decisions = synthetic_decisions(party_refs, consents_seed + offset, today)
            write_decisions(out / f"{party}.consents.csv", decisions)
    Console().print(table)
