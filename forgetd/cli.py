"""The ``forgetd`` command line: run the daemon's processes, and talk to a running one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError

from forgetd.client import ForgetdClient, ForgetdError
from forgetd.ledger.records import iso_utc
from forgetd.security.api_keys import ApiKeys, Scope
from forgetd.settings import Settings, get_settings

app = typer.Typer(help="forgetd: continual machine unlearning as a service.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
adapters_app = typer.Typer(help="Published adapter versions.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")
requests_app = typer.Typer(help="Deletion requests: audit trails and operators' replays.", no_args_is_help=True)
app.add_typer(requests_app, name="requests")
keys_app = typer.Typer(help="Tenants' API keys (stored hashed in Redis).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    try:
        return get_settings()
    except (ValidationError, ValueError) as e:
        typer.secho(f"forgetd: invalid settings:\n{e}", fg="red", err=True)
        raise typer.Exit(2) from e


def _client(settings: Settings, url: str | None, *, admin: bool = False) -> ForgetdClient:
    base = url or f"http://{settings.api_host}:{settings.api_port}"
    token = settings.admin_token if admin else settings.api_token
    return ForgetdClient(base, token.get_secret_value())


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# -- processes ----------------------------------------------------------------------------------


@app.command()
def up() -> None:
    """All-in-one embedded mode: Redis (if none answers), the API, one worker, and the serving engine."""
    from forgetd.embedded import run_embedded

    raise typer.Exit(run_embedded(_settings()))


@app.command()
def api() -> None:
    """Run the intake API (uvicorn)."""
    from forgetd.api.server import run_api

    run_api(_settings())


@app.command()
def worker(
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues; default: all of forgetd's.")] = None,
    beat: Annotated[bool, typer.Option(help="Also run the periodic tasks (one process per deployment).")] = True,
) -> None:
    """Run a Celery worker (one process, solo pool: one job per GPU at a time)."""
    from forgetd.pipeline.worker import run_worker

    run_worker(_settings(), queues=queues.split(",") if queues else None, beat=beat)


@app.command()
def serve() -> None:
    """Run the embedded serving engine (OpenAI-compatible completions with hot-swapped adapters)."""
    from forgetd.serving.app import run_serving

    run_serving(_settings())


# -- client commands ------------------------------------------------------------------------------


@app.command()
def submit(
    texts: Annotated[list[str], typer.Argument(help="Texts the model must forget.")],
    probe: Annotated[list[str] | None, typer.Option(help="PROMPT::COMPLETION to verify (repeatable).")] = None,
    keep: Annotated[list[str] | None, typer.Option(help="PROMPT::COMPLETION to keep (repeatable).")] = None,
    kind: Annotated[str, typer.Option(help="pii, copyright, harmful or other.")] = "other",
    lineage: Annotated[str | None, typer.Option(help="Target lineage.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key and body: same request.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the request reaches a terminal state.")] = False,
    url: Annotated[str | None, typer.Option(help="API base URL; default from settings.")] = None,
) -> None:
    """Submit a deletion request."""
    settings = _settings()
    with _client(settings, url) as client:
        try:
            status = client.submit(texts, probes=_pairs(probe, "--probe"), neighbours=_pairs(keep, "--keep"),
                                   kind=kind, lineage=lineage, idempotency_key=idempotency_key)
            if wait:
                status = client.wait(status["id"])
        except (ForgetdError, TimeoutError) as e:
            _fail(str(e))
        except httpx.TransportError as e:
            _fail(f"cannot reach the API: {e}")
    _print_json(status)


@app.command()
def status(request_id: str, url: Annotated[str | None, typer.Option(help="API base URL.")] = None) -> None:
    """Show a deletion request's state and receipt."""
    _call(lambda client: client.status(request_id), url)


@requests_app.command("audit")
def requests_audit(request_id: str, url: Annotated[str | None, typer.Option(help="API base URL.")] = None) -> None:
    """Export a request's audit trail (states and times) as JSON."""
    _call(lambda client: client.audit(request_id), url)


@requests_app.command("replay")
def requests_replay(request_id: str, url: Annotated[str | None, typer.Option(help="API base URL.")] = None) -> None:
    """Queue a dead-lettered (or held for review) request again, with a fresh attempt budget."""
    _call(lambda client: client.replay(request_id), url, admin=True)


def _call(action: Callable[[ForgetdClient], object], url: str | None, *, admin: bool = False) -> None:
    with _client(_settings(), url, admin=admin) as client:
        try:
            _print_json(action(client))
        except ForgetdError as e:
            _fail(str(e))
        except httpx.TransportError as e:
            _fail(f"cannot reach the API: {e}")


@adapters_app.command("list")
def adapters_list(lineage: Annotated[str | None, typer.Argument(help="One lineage; default: all.")] = None) -> None:
    """List published adapter versions from the store (no server needed)."""
    from adapters_store import StoreError

    store = _settings().open_adapter_store()
    try:
        for name in [lineage] if lineage else store.lineages():
            current = store.current_version(name)
            for manifest in store.versions(name):
                marker = "*" if manifest.version == current else " "
                typer.echo(f"{marker} {manifest.ref.served_name:<24} parent={manifest.parent} "
                           f"method={manifest.method} requests={len(manifest.request_ids)} "
                           f"created={manifest.created_at}")
    except StoreError as e:
        _fail(str(e))


@adapters_app.command("check")
def adapters_check(
    directory: Annotated[Path, typer.Argument(help="A PEFT adapter folder (adapter_config.json + safetensors).")],
    max_rank: Annotated[int | None, typer.Option(help="The vLLM server's --max-lora-rank; default: settings.")] = None,
    base: Annotated[Path | None, typer.Option(help="Base model folder: its config.json picks the architecture "
                                                   "and the shapes tensors must have.")] = None,
) -> None:
    """Check that vLLM would load an adapter (rank, bias, modules, DoRA, tensor keys and shapes)."""
    from adapters_store import check_vllm_compatibility

    base_config = None
    if base is not None:
        try:
            base_config = json.loads((base / "config.json").read_text())
        except (OSError, ValueError) as e:
            _fail(f"cannot read {base / 'config.json'}: {type(e).__name__}")
    rank = max_rank if max_rank is not None else _settings().vllm_max_lora_rank
    problems = check_vllm_compatibility(directory, max_rank=rank, base_config=base_config)
    if problems:
        typer.echo(f"{directory}: {len(problems)} problem(s) vLLM would refuse:")
        for problem in problems:
            typer.echo(f"  - {problem}")
        raise typer.Exit(1)
    typer.echo(f"{directory}: OK (vLLM would load it)")


@adapters_app.command("rollback")
def adapters_rollback(
    lineage: Annotated[str, typer.Argument(help="The lineage to move.")],
    version: Annotated[int, typer.Argument(help="The published version to serve again.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the lineage's history.")] = "rollback by operator",
) -> None:
    """Serve an earlier version again (store pointer + history), and tell the serving engines."""
    import redis

    from adapters_store import StoreError
    from forgetd.serving.rollback import roll_back

    settings = _settings()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        announced = roll_back(settings.open_adapter_store(), client, settings.key_prefix, lineage, version,
                              reason=reason)
    except StoreError as e:
        _fail(str(e))
    finally:
        client.close()
    typer.echo(f"{lineage} now serves v{version}" + ("" if announced else
               " (not announced: Redis unreachable; engines follow on their next re-sync)"))


def _api_keys() -> ApiKeys:
    import redis

    settings = _settings()
    return ApiKeys(redis.Redis.from_url(settings.redis_url), settings.key_prefix, settings.secret_bytes("hmac_key"))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Argument(help="Tenant the key acts for.")],
    scope: Annotated[list[Scope], typer.Option(help="submit, read or admin (repeatable).")],
) -> None:
    """Create a key; it is printed once and never stored."""
    try:
        key, info = _api_keys().create(tenant, set(scope))
    except ValueError as e:
        _fail(str(e))
    typer.echo(f"key id {info.key_id} for tenant {info.tenant}, scopes {','.join(sorted(info.scopes))}")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: ids, tenants, scopes and creation times (never secrets)."""
    for info in _api_keys().list():
        typer.echo(f"{info.key_id}  tenant={info.tenant}  scopes={','.join(sorted(info.scopes))}  "
                   f"created={iso_utc(info.created_at)}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    if not _api_keys().revoke(key_id):
        _fail(f"no key with id {key_id!r}")
    typer.echo(f"revoked {key_id}")


@keys_app.command("rotate-master")
def keys_rotate_master() -> None:
    """Re-wrap every stored data key under FORGETD_MASTER_KEY. Put the old key in
    FORGETD_PREVIOUS_MASTER_KEYS first; remove it once this reports nothing unreadable."""
    from forgetd.ledger import open_ledger

    try:
        report = open_ledger(_settings()).rotate_master_key()
    except ValueError as e:  # a malformed key in the settings
        _fail(str(e))
    typer.echo(f"re-wrapped {report.rewrapped}, already under the current key {report.already_current}, "
               f"unreadable {len(report.unreadable)}")
    if report.unreadable:
        _fail("no configured master key opens the data keys of: " + ", ".join(report.unreadable))


@app.command()
def doctor() -> None:
    """Check Redis, the model, the adapter store and the GPU; say what is wrong in plain words."""
    from forgetd.doctor import run_checks

    results = run_checks(_settings())
    for result in results:
        typer.secho(f"{'ok ' if result.ok else 'FAIL'} {result.name}: {result.message}",
                    fg="green" if result.ok else "red")
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command()
def bench(
    model: Annotated[str, typer.Option(help="tiny (trained from scratch), smollm2, or a local HF folder.")] = "tiny",
    dataset: Annotated[str, typer.Option(help="builtin, or a JSON Lines file (see docs/benchmark.md).")] = "builtin",
    requests: Annotated[int, typer.Option(help="Subjects to forget, one deletion request each.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Requests per unlearning batch.")] = 4,
    method: Annotated[str, typer.Option(help="The forgetd method under test (registered name).")] = "fit",
    baselines: Annotated[str, typer.Option(help="Comma-separated methods on the same stream: full_ga, "
                                           "full_graddiff, full_npo or forgetd methods; '' for none.")]
    = "full_ga,full_graddiff,full_npo",
    seed: Annotated[int, typer.Option(help="Seed of data, models, unlearning and attacks.")] = 0,
    method_seed: Annotated[int | None, typer.Option(help="Seed of the forgetd methods' LoRA initialisation and "
                                                    "minibatches alone; default --seed.")] = None,
    out: Annotated[str, typer.Option(help="Folder for report.json, report.md and curves.png.")] = "bench-out",
    cache: Annotated[str | None, typer.Option(help="Cache of original/gold models; default <models dir>/bench.")]
    = None,
    retain: Annotated[int | None, typer.Option(help="Retain subjects; default 10 (builtin) or the rest.")] = None,
    heldout: Annotated[int, typer.Option(help="Never-seen subjects.")] = 10,
    neighbours: Annotated[int, typer.Option(help="Retain facts each request carries as neighbours.")] = 8,
    replay: Annotated[int, typer.Option(help="Earlier requests' probes (and neighbours) each batch replays, "
                                        "at most.")] = 48,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    gold_reseeded: Annotated[bool, typer.Option(help="Also retrain gold with the next seed (the noise floor of "
                                                "every comparison with gold).")] = True,
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
) -> None:
    """Benchmark unlearning against retraining on a stream of deletion requests; writes the report to --out."""
    from forgetd.bench import BenchConfig, DatasetError, run_benchmark
    from forgetd.bench.progress import Progress
    from forgetd.models import ModelNotFoundError

    try:
        config = BenchConfig.model_validate({
            "model": model, "dataset": dataset, "requests": requests, "batch_size": batch_size, "method": method,
            "baselines": tuple(name.strip() for name in baselines.split(",") if name.strip()), "seed": seed,
            "method_seed": method_seed, "out": out, "cache": cache, "retain": retain, "heldout": heldout,
            "neighbours": neighbours, "replay": replay, "device": device, "gold_reseeded": gold_reseeded})
    except ValidationError as e:
        _fail(f"invalid benchmark options:\n{e}")
        return
    try:
        run_benchmark(config, _settings().models_dir, Progress(quiet=quiet))
    except (DatasetError, ModelNotFoundError) as e:
        _fail(str(e))


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        prompt, sep, completion = value.partition("::")
        if not sep or not prompt.strip() or not completion.strip():
            _fail(f"{option} takes PROMPT::COMPLETION, both non-empty")
        pairs.append((prompt, completion))
    return pairs


def _fail(message: str) -> None:
    typer.secho(f"forgetd: {message}", fg="red", err=True)
    raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
