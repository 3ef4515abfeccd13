"""JSON schemas for the prometheus-operator resources the chart renders (monitoring.coreos.com/v1).

kubernetes-validate ships no schemas for custom resources. These cover the fields of PodMonitor,
ServiceMonitor and PrometheusRule that matter here, from the operator's v1 API reference; unknown
fields are refused, as a strict validation of the real CRD would.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                         r"(([0-9]+)s)?(([0-9]+)ms)?)$"}


def _strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


_METADATA = {"type": "object", "required": ["name"], "properties": {
    "name": _STRING, "namespace": _STRING, "labels": _STRING_MAP, "annotations": _STRING_MAP}}
_LABEL_SELECTOR = _strict({
    "matchLabels": _STRING_MAP,
    "matchExpressions": {"type": "array", "items": _strict({
        "key": _STRING, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": _STRING}}, ["key", "operator"])},
})
_NAMESPACE_SELECTOR = _strict({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STRING}})
_RELABEL = _strict({
    "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"}},
    "separator": _STRING, "targetLabel": _STRING, "regex": _STRING, "modulus": {"type": "integer"},
    "replacement": _STRING,
    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap",
                        "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase",
                        "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
})
_ENDPOINT_COMMON = {
    "port": _STRING, "path": {"type": "string", "pattern": "^/"}, "scheme": {"enum": ["http", "https"]},
    "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"}, "params": {"type": "object"},
    "relabelings": {"type": "array", "items": _RELABEL},
    "metricRelabelings": {"type": "array", "items": _RELABEL},
}
_COMMON_SPEC = {
    "jobLabel": _STRING, "podTargetLabels": {"type": "array", "items": _STRING},
    "selector": _LABEL_SELECTOR, "namespaceSelector": _NAMESPACE_SELECTOR,
    "sampleLimit": {"type": "integer", "minimum": 0},
}


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _strict({"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": kind},
                    "metadata": _METADATA, "spec": spec}, ["apiVersion", "kind", "metadata", "spec"])


SCHEMAS: dict[str, dict[str, Any]] = {
    "PodMonitor": _resource("PodMonitor", _strict({
        **_COMMON_SPEC,
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _strict(_ENDPOINT_COMMON)},
    }, ["selector", "podMetricsEndpoints"])),
    "ServiceMonitor": _resource("ServiceMonitor", _strict({
        **_COMMON_SPEC, "targetLabels": {"type": "array", "items": _STRING},
        "endpoints": {"type": "array", "minItems": 1, "items": _strict(
            {**_ENDPOINT_COMMON, "targetPort": {"type": ["string", "integer"]}})},
    }, ["selector", "endpoints"])),
    "PrometheusRule": _resource("PrometheusRule", _strict({
        "groups": {"type": "array", "minItems": 1, "items": _strict({
            "name": _STRING, "interval": _DURATION, "limit": {"type": "integer"},
            "partial_response_strategy": _STRING,
            "rules": {"type": "array", "items": _strict({
                "alert": _STRING, "record": _STRING, "expr": {"type": ["string", "integer"]}, "for": _DURATION,
                "keep_firing_for": _DURATION, "labels": _STRING_MAP, "annotations": _STRING_MAP,
            }, ["expr"])},
        }, ["name", "rules"])},
    }, ["groups"])),
}
