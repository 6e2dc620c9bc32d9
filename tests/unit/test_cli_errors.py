"""CLI errors are click exceptions with the documented exit codes (0 valid, 1 invalid or failed,
2 usage error), and ``validate`` takes the topology as an argument as well as with ``-t``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from contrail_ha import cli
from contrail_ha.cli import main
from contrail_ha.errors import ContrailHaError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HA = EXAMPLES / "ha.yaml"


def _invalid(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HA.read_text().replace("kafka: 3 ", "kafka: 4 "))
    return bad


@pytest.mark.parametrize("args", [[str(HA)], ["-t", str(HA)], [str(HA), "-t", str(HA)]],
                         ids=["FILE", "-t FILE", "both, same file"])
def test_validate_accepts_file_argument_and_option(args: list[str]) -> None:
    r = CliRunner().invoke(main, ["validate", *args])
    assert r.exit_code == 0, r.output
    assert f"valid: {HA}" in r.output


@pytest.mark.parametrize("form", ["FILE", "-t FILE"])
def test_validate_invalid_exits_1_with_the_report(tmp_path: Path, form: str) -> None:
    bad = _invalid(tmp_path)
    args = [str(bad)] if form == "FILE" else ["-t", str(bad)]
    r = CliRunner().invoke(main, ["validate", *args])
    assert r.exit_code == 1, r.output
    assert "replication.kafka" in r.stderr and f"invalid: {bad}" in r.stderr
    assert "Error:" not in r.output  # our own message, not click's prefix


def test_validate_invalid_json_exits_1_and_prints_only_json(tmp_path: Path) -> None:
    import json

    r = CliRunner().invoke(main, ["validate", "--json", str(_invalid(tmp_path))])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["valid"] is False
    assert r.stderr == ""


@pytest.mark.parametrize("form", ["FILE", "-t FILE"])
def test_validate_missing_file_is_a_usage_error(tmp_path: Path, form: str) -> None:
    missing = tmp_path / "nope.yaml"
    args = [str(missing)] if form == "FILE" else ["-t", str(missing)]
    r = CliRunner().invoke(main, ["validate", *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip() == f"error: topology file {missing} does not exist"


def test_validate_two_different_files_is_a_usage_error(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(HA.read_text())
    r = CliRunner().invoke(main, ["validate", str(HA), "-t", str(other)])
    assert r.exit_code == 2, r.output
    assert "two topology files" in r.stderr


def test_validate_bad_option_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["validate", "--bogus"]).exit_code == 2


def test_other_commands_report_usage_errors_with_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["render", str(tmp_path / "r"), "-t", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = CliRunner().invoke(main, ["logs", "nohost", "-t", str(HA), "--state-root", str(tmp_path)])
    assert r.exit_code == 2 and "unknown host 'nohost'" in r.stderr
    r = CliRunner().invoke(main, ["scale", "bogus=2", "-t", str(HA), "--no-apply"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ")


def test_error_classes_and_exit_codes() -> None:
    for cls in (cli.CommandError, cli.TopologyInvalid, cli.Degraded, cli.DataLost, cli.Interrupted):
        assert issubclass(cls, click.ClickException) and issubclass(cls, ContrailHaError)
    assert issubclass(cli.UsageProblem, click.UsageError) and issubclass(cli.UsageProblem, ContrailHaError)
    assert cli.CommandError().exit_code == 1
    assert cli.Degraded().exit_code == 1
    assert cli.DataLost().exit_code == 1
    assert cli.Interrupted().exit_code == 130
    assert cli.UsageProblem("x").exit_code == 2


def test_command_error_message_goes_to_stderr_and_an_empty_one_prints_nothing() -> None:
    @click.command()
    @click.argument("what")
    def cmd(what: str) -> None:
        if what == "fail":
            raise cli.CommandError("[red]it failed[/]: because")
        if what == "quiet":
            raise cli.DataLost()
        raise cli.Interrupted("stopped")

    r = CliRunner().invoke(cmd, ["fail"])
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", "it failed: because\n")
    r = CliRunner().invoke(cmd, ["quiet"])
    assert (r.exit_code, r.output) == (1, "")
    r = CliRunner().invoke(cmd, ["other"])
    assert (r.exit_code, r.stderr) == (130, "stopped\n")
