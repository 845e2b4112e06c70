#!/usr/bin/env bash
# Guarded live smoke for provider aws-lambda-microvm (docs/provider-aws-lambda-microvm.md).
#
#   CRABBOX_LIVE=1 CRABBOX_LIVE_PROVIDERS=aws-lambda-microvm \
#   CRABBOX_AWS_LAMBDA_MICROVM_IMAGE=arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner \
#   scripts/live-smoke.sh [--dry-run]
#
# One retained MicroVM: doctor, a run that proves the archive sync, status, list, a reuse run,
# pause + status, resume + status, stop, and a list that no longer shows it. A created lease is
# always stopped, whatever happens. The last line is the verdict, with upstream's tokens:
#   classification=live_aws_lambda_microvm_smoke_passed reason=lifecycle_complete   (exit 0)
#   classification=dry_run | environment_blocked | quota_blocked                     (exit 0)
#   classification=diagnostic_only                                                   (exit 1)
# Against a loopback control plane (the local emulator; crabbox decides, doctor reports it) the
# same steps end in `target=emulator classification=emulator_smoke_passed`: an emulator pass is
# never reported as a live AWS pass. Needs bash, git and grep; no jq.
#
# CRABBOX_BIN picks the binary (default: this checkout's dist/crabbox, else crabbox on PATH).
set -uo pipefail

provider=aws-lambda-microvm
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${CRABBOX_BIN:-}" ]]; then
  bin="$CRABBOX_BIN"
elif [[ -x "$here/../dist/crabbox" ]]; then
  bin="$(cd "$here/.." && pwd)/dist/crabbox"
else
  bin=crabbox
fi

dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h | --help)
      sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "live-smoke: unknown argument $arg (use --dry-run)" >&2
      exit 2
      ;;
  esac
done

target=aws
verdict() { # classification reason exit-code
  local prefix=""
  [[ "$target" == emulator ]] && prefix="target=emulator "
  echo "${prefix}classification=$1 reason=$2"
  exit "$3"
}

if [[ "$dry_run" == 1 ]]; then
  echo "classification=dry_run provider=$provider mutation=false"
  echo "command=$bin doctor --provider $provider --json"
  exit 0
fi
[[ "${CRABBOX_LIVE:-}" == 1 ]] || verdict environment_blocked set_CRABBOX_LIVE=1 0
if [[ -n "${CRABBOX_LIVE_PROVIDERS:-}" && ",${CRABBOX_LIVE_PROVIDERS// /}," != *",$provider,"* ]]; then
  verdict environment_blocked "CRABBOX_LIVE_PROVIDERS_excludes_$provider" 0
fi
[[ -n "${CRABBOX_AWS_LAMBDA_MICROVM_IMAGE:-}" ]] || verdict environment_blocked missing_CRABBOX_AWS_LAMBDA_MICROVM_IMAGE 0
command -v git >/dev/null || verdict environment_blocked missing_git 0
if [[ "$bin" == */* ]]; then [[ -x "$bin" ]] || verdict environment_blocked "missing_crabbox_binary_$bin" 0
else command -v "$bin" >/dev/null || verdict environment_blocked missing_crabbox_binary 0; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/crabbox-live-smoke.XXXXXX")"
slug="lambda-microvm-live-$(date -u +%Y%m%d)-$$"
created=0
stopped=0
out="$work/out"

finish() {
  if [[ "$created" == 1 && "$stopped" == 0 ]]; then
    (cd "$work/repo" 2>/dev/null || cd "$work"; "$bin" stop --provider "$provider" --aws-lambda-microvm-forget-missing "$slug") >/dev/null 2>&1 || \
      echo "live-smoke: could not stop lease $slug; run: crabbox stop --provider $provider $slug" >&2
  fi
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Classifies a failed step from its output; quota and environment problems are not product bugs.
fail() { # step-name
  local text
  text="$(cat "$out" 2>/dev/null)"
  printf '%s\n' "$text" | tail -n 20 >&2
  if grep -qiE 'quota|ServiceQuotaExceeded|InsufficientCapacity|limit exceeded' <<<"$text"; then
    verdict quota_blocked "$1" 0
  fi
  if grep -qiE 'credential|unauthori[sz]ed|forbidden|AccessDenied|not found|endpoint|network|timed? ?out|timeout|tls|ECONNREFUSED|ENOTFOUND|EAI_AGAIN' <<<"$text"; then
    verdict environment_blocked "$1" 0
  fi
  verdict diagnostic_only "$1" 1
}

step() { # step-name command...
  local name="$1"
  shift
  echo "live-smoke: $name: $bin $*" >&2
  (cd "$work/repo" && "$bin" "$@") >"$out" 2>&1
}

json_state() { grep -o '"state":"[^"]*"' "$out" | head -n 1 | cut -d'"' -f4 | tr '[:upper:]' '[:lower:]'; }

mkdir -p "$work/repo"
(
  cd "$work/repo" &&
    git init -q &&
    printf 'lambda-microvm-sync-proof' >proof.txt &&
    git add proof.txt
) || verdict diagnostic_only git_fixture_failed 1

step doctor doctor --provider "$provider" --json || fail doctor_failed
if grep -q '"mode":"emulator"' "$out"; then target=emulator; fi

step initial_run run --provider "$provider" --keep --slug "$slug" \
  --shell 'test "$(cat proof.txt)" = lambda-microvm-sync-proof && printf LAMBDA_MICROVM_SYNC_OK'
code=$?
# The lease exists once the claim does, even if the command failed: stop it on the way out.
grep -q "$slug" "$out" && created=1
[[ "$code" == 0 ]] || fail initial_run_failed
grep -q LAMBDA_MICROVM_SYNC_OK "$out" || verdict diagnostic_only sync_proof_missing 1

step status_running status --provider "$provider" --id "$slug" --wait --json || fail status_failed
[[ "$(json_state)" == running ]] || verdict diagnostic_only "status_not_running_$(json_state)" 1

step list list --provider "$provider" --json || fail list_failed
grep -qE "\"(name|slug)\":\"$slug\"" "$out" || verdict diagnostic_only lease_missing_from_list 1

step reuse run --provider "$provider" --id "$slug" --no-sync -- printf LAMBDA_MICROVM_REUSE_OK || fail reuse_failed
grep -q LAMBDA_MICROVM_REUSE_OK "$out" || verdict diagnostic_only reuse_marker_missing 1

step pause pause --provider "$provider" "$slug" || fail pause_failed
step status_suspended status --provider "$provider" --id "$slug" --json || fail status_failed
[[ "$(json_state)" == suspended ]] || verdict diagnostic_only "status_not_suspended_$(json_state)" 1

step resume resume --provider "$provider" "$slug" || fail resume_failed
step status_resumed status --provider "$provider" --id "$slug" --wait --json || fail status_failed
[[ "$(json_state)" == running ]] || verdict diagnostic_only "status_not_running_after_resume_$(json_state)" 1

step stop stop --provider "$provider" "$slug" || fail stop_failed
stopped=1
step list_after_stop list --provider "$provider" --json || fail list_failed
if grep -qE "\"(name|slug)\":\"$slug\"" "$out"; then verdict diagnostic_only lease_still_listed_after_stop 1; fi

if [[ "$target" == emulator ]]; then verdict emulator_smoke_passed lifecycle_complete 0; fi
echo "classification=live_aws_lambda_microvm_smoke_passed reason=lifecycle_complete"
exit 0
