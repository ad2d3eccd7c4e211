"""`tone bench api`'s reading of wrk's output (samples printed by Debian's wrk 4 against `tone serve`)."""

import pytest

from benchmarks.api import WRK_SCRIPT, parse_wrk, user_id
from tone.errors import ToneError

OK = """Running 2s test @ http://127.0.0.1:18765
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.97ms    4.68ms  43.63ms   92.82%
    Req/Sec     0.93k   177.97     1.24k    65.00%
  Latency Distribution
     50%    8.29ms
     75%    9.90ms
     90%   11.98ms
     99%   34.26ms
  1860 requests in 2.00s, 1.78MB read
Requests/sec:    928.89
Transfer/sec:      0.89MB
"""

UNKNOWN_USERS = """Running 1s test @ http://127.0.0.1:18765/users/nobody/tone
  1 threads and 4 connections
  Latency Distribution
     50%  401.00us
     75%    4.57ms
     90%    6.40ms
     99%     1.02s
  928 requests in 1.00s, 161.44KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 928
Requests/sec:    924.85
"""


def test_rate_percentiles_and_no_errors():
    assert parse_wrk(OK) == {
        "lookups_per_s": 929,
        "requests": 1860,
        "p50_ms": 8.29,
        "p99_ms": 34.26,
        "non_2xx": 0,
        "socket_errors": 0,
    }


def test_other_units_and_errors_are_read():
    row = parse_wrk(UNKNOWN_USERS)
    assert (row["p50_ms"], row["p99_ms"]) == (0.4, 1020.0)
    assert (row["non_2xx"], row["socket_errors"]) == (928, 5)


def test_output_without_figures_is_an_error_that_shows_it():
    with pytest.raises(ToneError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_the_lua_script_asks_for_the_seeded_ids():
    script = WRK_SCRIPT.replace("{prefix}", "apibench").replace("{last}", "59999")
    assert '"/users/apibench%09d/tone", math.random(0, 59999)' in script
    assert "apibench%09d" % 42 == user_id(42)  # noqa: UP031 - the Lua format, checked against Python's
