"""The `option_settings` of one `.ebextensions` config file, in either of EB's two forms, read once for
every reader of them (the environment properties, the load balancer's declarations):

    option_settings:                      option_settings:
      aws:elb:healthcheck:                  - namespace: aws:elb:healthcheck
        Interval: 10                          option_name: Interval
                                              value: 10

A list entry without a namespace is an environment property, as EB reads it. Nodes, not values, are
kept: a reader needs the line, and tells a scalar from a value EB would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

ENVIRONMENT_NAMESPACE = "aws:elasticbeanstalk:application:environment"


@dataclass(frozen=True)
class OptionSetting:
    namespace: str
    option: str  # "" when the name is not a scalar
    option_node: yaml.Node  # the option's name as written
    value_node: yaml.Node | None  # None: a list entry without `value`

    @property
    def line(self) -> int:
        return self.option_node.start_mark.line + 1

    @property
    def text(self) -> str | None:
        """The value as written, stripped; None when it is missing or not a scalar."""
        return scalar(self.value_node) if isinstance(self.value_node, yaml.ScalarNode) else None


def option_settings(root: yaml.Node | None) -> list[OptionSetting]:
    """Every option the file's `option_settings` sets, in the order written."""
    node = mapping_get(root, "option_settings")
    found: list[OptionSetting] = []
    if isinstance(node, yaml.MappingNode):
        for namespace, options in node.value:
            if isinstance(options, yaml.MappingNode):
                found += [OptionSetting(scalar(namespace), scalar(name), name, value) for name, value in options.value]
    elif isinstance(node, yaml.SequenceNode):
        for entry in node.value:
            name = mapping_get(entry, "option_name")
            if name is None:
                continue
            namespace = mapping_get(entry, "namespace")
            found.append(OptionSetting(scalar(namespace) if namespace is not None else ENVIRONMENT_NAMESPACE,
                                       scalar(name), name, mapping_get(entry, "value")))
    return found


def mapping_get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for name, value in node.value if scalar(name) == key), None)


def scalar(node: yaml.Node | None) -> str:
    return str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
