"""The ``paper-agent`` command: a thin click group whose commands load lazily (fast --help)."""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from agent import __version__
from agent.errors import PaperAgentError
from agent.llm.redact import ScrubbingFormatter, register, scrub, scrub_logs

# command name -> "module:attribute"; each command lives in its own module.
COMMANDS = {
    "run": "agent.cli.run:run",
    "fetch": "agent.cli.fetch:fetch",
    "cache": "agent.cli.cache:cache",
    "seen": "agent.cli.seen:seen",
    "eval": "agent.cli.eval:eval_cmd",
    "digest": "agent.cli.digest:digest",
    "post": "agent.cli.digest:post",
    "batch": "agent.cli.batch:batch",
    "runs": "agent.cli.runs:runs",
    "export": "agent.cli.export:export",
    "site": "agent.cli.site:site",
}

HELP = {
    "run": "Tag and summarize papers; write results.jsonl.",
    "fetch": "Fetch papers from arXiv (API or RSS) or Hugging Face as JSONL.",
    "cache": "Inspect or clear the answer cache.",
    "seen": "List or forget the papers earlier runs annotated.",
    "eval": "Score results against gold tags and summaries.",
    "digest": "Render a digest (slack, mrkdwn, markdown, html, json).",
    "post": "Deliver a digest to Slack or by email.",
    "batch": "Batch files (OpenAI Batch API, vllm run-batch) and Batch API jobs.",
    "runs": "List the runs the library remembers.",
    "export": "Write the library's results of a day, a run or a span as JSONL.",
    "site": "Build the archive site (days, tags, search, Atom feed) from the library.",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from their short help, without importing them (fast --help)."""
        with formatter.section("Commands"):
            formatter.write_dl(list(HELP.items()))

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a user-facing error becomes one redacted line and its exit code."""
        try:
            return super().invoke(ctx)
        except PaperAgentError as exc:
            click.echo(f"paper-agent: error: {scrub(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("paper-agent: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # stdout on a full disk: what the user can act on, in one line.
                click.echo(f"paper-agent: error: cannot write the output: {exc.strerror}", err=True)
                ctx.exit(2)
            # A bug, not a user error: one line by default, the traceback with -vv.
            logging.getLogger("agent").debug("internal error", exc_info=True)
            message = scrub(f"{type(exc).__name__}: {exc}")
            click.echo(f"paper-agent: internal error: {message} (-vv shows where)", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paper-agent")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """Tag and summarize each day's new papers against your taxonomy, and deliver the digest."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler()
    # Every log line is scrubbed: no secret in any case or spacing, no terminal control codes.
    handler.setFormatter(ScrubbingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    scrub_logs()


def main() -> None:
    """Console entry point: a usage error is one line too, with where to find help."""
    # A webhook given as a flag is a secret before click parses anything: a usage error about
    # another argument may quote it.
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--slack-webhook" and i + 1 < len(args):
            register(args[i + 1])
        elif arg.startswith("--slack-webhook="):
            register(arg.partition("=")[2])
    try:
        code = cli.main(prog_name="paper-agent", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # "paper-agent" alone: the help
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # bad or missing options and arguments
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        click.echo(f"paper-agent: error: {scrub(message)}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"paper-agent: error: {scrub(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("paper-agent: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
