from devstack.balancer.health import parse_healthd, request_stats


def test_the_last_minutes_requests_as_eb_enhanced_health_shows_them():
    now = 1_000_000.0
    lines = [f'{now - 70}"/old"500"0.900"0.900"-',  # outside the minute
             *(f'{now - 30 + i * 0.1}"/api/status"200"0.0{i % 10}0"0.010"-' for i in range(90)),
             f'{now - 5}"/login"302"0.002"0.002"-', f'{now - 4}"/nope"404"0.001"-"-',
             *(f'{now - 3}"/x"502"0.500"0.500"-' for _ in range(8)),
             'garbage line', f'{now - 2}"/cut']
    stats = request_stats(parse_healthd(lines), now)
    assert stats.requests == 100 and abs(stats.per_second - 100 / 60) < 1e-9
    assert stats.shares == {"2xx": 90.0, "3xx": 1.0, "4xx": 1.0, "5xx": 8.0}
    assert stats.p50 == 50.0 and stats.p90 == 90.0 and stats.p99 == 500.0
    assert request_stats([], now).requests == 0 and request_stats([], now).p50 is None
