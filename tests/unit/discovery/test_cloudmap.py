"""Which URL a Cloud Map instance's attributes give."""

from __future__ import annotations

import pytest
from tollway.discovery.cloudmap import instance_url


@pytest.mark.parametrize(
    ("attributes", "url"),
    [
        ({"AWS_INSTANCE_IPV4": "10.0.0.7", "AWS_INSTANCE_PORT": "8080"}, "http://10.0.0.7:8080"),
        ({"AWS_INSTANCE_IPV4": "10.0.0.7"}, "http://10.0.0.7:80"),
        ({"AWS_INSTANCE_IPV6": "fd00::7", "AWS_INSTANCE_PORT": "81"}, "http://[fd00::7]:81"),
        (
            {"url": "https://users.internal:8443/", "AWS_INSTANCE_IPV4": "10.0.0.7"},
            "https://users.internal:8443",
        ),
        ({"AWS_INSTANCE_CNAME": "users.example.com"}, None),
    ],
)
def test_cloud_map_instance_urls(attributes, url):
    assert instance_url(attributes) == url
