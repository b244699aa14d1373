"""Reads Anju's Open311 endpoint back with a client from the registry: georeport
(PyPI, Apache-2.0), in JSON and in XML (parsed by xmltodict). Prints, per format, the
services, a service's definition, the requests listed by id and one request, as JSON.

Usage: read_back.py <root address, e.g. http://127.0.0.1:8080/open311/v2> <request id>
"""

import json
import sys

from georeport import GeoReport


def main() -> None:
    root, request_id = sys.argv[1], sys.argv[2]
    out = {}
    for fmt in ("json", "xml"):
        client = GeoReport(root, output_format=fmt)
        services = client.get_service_list()
        if isinstance(services, dict):  # one service in XML
            services = [services]
        listed = client.get_service_requests(service_request_id=request_id)
        if isinstance(listed, dict):  # one request in XML
            listed = [listed]
        out[fmt] = {
            "services": services,
            "definition": client.get_service_definition("wiring"),
            "listed": listed,
            "request": client.get_service_request(request_id),
        }
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
