"""Read the Bicep templates as data: parse them with pycep-parser (the parser checkov uses
for Bicep) and work out the values they deploy, as far as they are known before Azure runs
them.

pycep writes an identifier and a string literal alike (``name: name`` and ``name: 'name'``
both become ``"name"``), so a bare string is looked up among the file's loop variables,
variables and parameters first, and is a literal only when it names none of them. Values
that exist only once Azure deploys the template (resource ids, principal ids, endpoints,
``uniqueString``) come back as ``Deployed``, which names the expression; two references to
the same deployed value compare equal.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
INTERPOLATION = re.compile(r"\$\{([\w.]+)\}")


@dataclass(frozen=True)
class Deployed:
    """A value Azure decides at deployment time, named by the expression that yields it."""

    expression: str


@cache
def parser() -> BicepParser:
    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    """The template as pycep's JSON; raises lark's ``UnexpectedInput`` where it is not Bicep."""
    return dict(parser().parse(file_path=path))


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def unquote(key: str) -> str:
    """pycep keeps the quotes of a quoted object key (``'azd-env-name'``)."""
    return key[1:-1] if len(key) > 1 and key[0] == key[-1] == "'" else key


def _path(node: Any) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but a chain of names."""
    if isinstance(node, str):
        return [node]
    operator = node.get("operator") if isinstance(node, dict) else None
    if operator and operator["type"] == "property_accessor":
        left = _path(operator["operands"]["operand_1"])
        right = _path(operator["operands"]["operand_2"])
        if left is not None and right is not None:
            return left + right
    return None


def show(node: Any) -> str:
    """A pycep expression as (roughly) the Bicep text it came from."""
    if isinstance(node, dict) and set(node) == {"function"}:
        function = node["function"]
        arguments = [show(item) for item in function["parameters"].values() if item is not None]
        return f"{function['type']}({', '.join(arguments)})"
    if isinstance(node, dict) and set(node) == {"operator"}:
        operator = node["operator"]
        operands = [show(item) for item in operator["operands"].values()]
        joiner = "." if operator["type"] == "property_accessor" else f" {operator['type']} "
        return joiner.join(operands)
    return str(node)


class Template:
    """One .bicep file with the parameter values its caller passed (or their defaults)."""

    def __init__(self, path: Path, arguments: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.doc = parse(path)
        self.arguments = dict(arguments or {})

    def section(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.doc.get(name) or {}
        return found

    # --- what the file declares --------------------------------------------------------

    def module(self, symbol: str) -> "Template":
        """The module ``symbol`` of this file, with the arguments this file passes it."""
        declared = self.section("modules")[symbol]
        path = (self.path.parent / declared["detail"]["path"]).resolve()
        params = declared["config"]["params"]
        return Template(path, {name: self.value(value) for name, value in params.items()})

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Symbol -> declaration of every resource (not ``existing``) of that type."""
        return {symbol: declared for symbol, declared in self.section("resources").items()
                if declared["type"] == resource_type and not declared["existing"]}

    def instances(self, symbol: str) -> list[dict[str, Any]]:
        """The resource's body, evaluated: one per loop item, or one; none when its
        ``if (...)`` is false with these arguments."""
        config = self.section("resources")[symbol]["config"]
        if "condition" in config and "loop_type" not in config:
            condition = self.value(config["condition"])
            assert isinstance(condition, bool), f"{symbol}: condition {condition}"
            if not condition:
                return []
            config = config["config"]
        if "loop_type" in config:
            evaluated = self._loop(config, {})
            assert isinstance(evaluated, list)
            return evaluated
        body = self.value(config)
        assert isinstance(body, dict)
        return [body]

    def output(self, name: str) -> Any:
        return self.value(self.section("outputs")[name]["value"])

    def allowed(self, parameter: str) -> list[Any]:
        for decorator in self.section("parameters")[parameter]["decorators"]:
            if decorator["type"] == "allowed":
                return list(decorator["argument"])
        return []

    # --- evaluation ----------------------------------------------------------------------

    def value(self, node: Any, local: Mapping[str, Any] | None = None) -> Any:
        local = local or {}
        if isinstance(node, str):
            return self._name(node, local)
        if isinstance(node, list):
            return [self.value(item, local) for item in node]
        if not isinstance(node, dict):
            return node  # bool, int, None
        if "loop_type" in node:
            return self._loop(node, local)
        if set(node) == {"function"}:
            return self._function(node["function"], local)
        if set(node) == {"operator"}:
            return self._operator(node, local)
        return {self._interpolate(unquote(key), local): self.value(item, local)
                for key, item in node.items()}

    def _name(self, name: str, local: Mapping[str, Any]) -> Any:
        if name in local:
            return local[name]
        variables = self.section("variables")
        if name in variables:
            return self.value(variables[name]["value"])
        parameters = self.section("parameters")
        if name in parameters:
            if name in self.arguments:
                return self.arguments[name]
            default = parameters[name]["default"]
            return Deployed(f"param {name}") if default is None else self.value(default)
        return self._interpolate(name, local)

    def _interpolate(self, text: str, local: Mapping[str, Any]) -> str:
        return INTERPOLATION.sub(lambda match: self._text(match[1], local), text)

    def _text(self, expression: str, local: Mapping[str, Any]) -> str:
        """One ``${...}`` of a string, as text; a deployed value as ``<expression>``."""
        found = self._reference(expression.split("."), local)
        return f"<{found.expression}>" if isinstance(found, Deployed) else str(found)

    def _loop(self, node: dict[str, Any], local: Mapping[str, Any]) -> list[Any]:
        detail = node["loop_type"]["detail"]
        assert node["loop_type"]["type"] == "array" and node.get("condition") is None, node
        items = self.value(detail["array_name"], local)
        assert isinstance(items, list), items
        return [self.value(node["config"], {**local, detail["item_name"]: item})
                for item in items]

    def _function(self, function: dict[str, Any], local: Mapping[str, Any]) -> Any:
        kind, parameters = function["type"], function["parameters"]
        arguments = {name: self.value(item, local) for name, item in parameters.items()}
        if kind == "string":
            converted = arguments["value_to_convert"]
            if isinstance(converted, bool):
                return str(converted).lower()
            return converted if isinstance(converted, Deployed) else str(converted)
        if kind == "union" and all(isinstance(arg, dict) for arg in arguments.values()):
            merged: dict[str, Any] = {}
            for argument in arguments.values():
                merged.update(argument)
            return merged
        if kind == "empty" and isinstance(arguments["item_to_test"], str | list | dict):
            return len(arguments["item_to_test"]) == 0
        if kind == "items" and isinstance(arguments["arg_1"], dict):
            return [{"key": key, "value": item}
                    for key, item in sorted(arguments["arg_1"].items())]
        if kind == "load_text_content":  # read when Bicep compiles, relative to the file
            return (self.path.parent / arguments["file_path"]).read_text(encoding="utf-8")
        if kind == "replace" and isinstance(arguments["original_string"], str):
            new = arguments["new_string"]
            text = f"<{new.expression}>" if isinstance(new, Deployed) else str(new)
            return arguments["original_string"].replace(arguments["old_string"], text)
        if kind == "subscription_resource_id" and arguments.get("subscription_id") is None:
            names = [arguments[key] for key in ("resource_name_1", "resource_name_2")
                     if arguments.get(key) is not None]
            return "/".join([arguments["resource_type"], *map(str, names)])
        return Deployed(show({"function": function}))

    def _operator(self, node: dict[str, Any], local: Mapping[str, Any]) -> Any:
        operator = node["operator"]
        if operator["type"] == "conditional":  # a ? b : c, decided when a is known
            operands = operator["operands"]
            condition = self.value(operands["condition"], local)
            if isinstance(condition, bool):
                return self.value(operands["true_value" if condition else "false_value"], local)
            return Deployed(show(node))
        if operator["type"] == "not":
            operand = self.value(operator["operands"]["bool_value"], local)
            return (not operand) if isinstance(operand, bool) else Deployed(show(node))
        path = _path(node)
        if path is None:
            return Deployed(show(node))
        return self._reference(path, local)

    def _reference(self, path: list[str], local: Mapping[str, Any]) -> Any:
        """``a.b.c``: a property of a loop item, variable or parameter, a module's output, or
        a resource's name; anything else is only known once deployed."""
        head, *rest = path
        resources = self.section("resources")
        if head in self.section("modules") and rest[:1] == ["outputs"] and len(rest) == 2:
            return self.module(head).output(rest[1])
        if head in resources:
            if rest == ["name"]:
                return self.value(_body(resources[head])["name"])
            return Deployed(".".join([self.reference(head), *rest]))
        found = self._name(head, local) if head in local or self._declares(head) else None
        for key in rest:
            if not isinstance(found, dict) or key not in found:
                return Deployed(".".join(path))
            found = found[key]
        return Deployed(".".join(path)) if found is None else found

    def _declares(self, name: str) -> bool:
        return name in self.section("variables") or name in self.section("parameters")

    def reference(self, symbol: str) -> str:
        """A resource, named by its type and deployed name, so that two files that refer to
        one resource (one declares it, the other as ``existing``) agree."""
        declared = self.section("resources")[symbol]
        return f"{declared['type']}[{self.value(_body(declared)['name'])}]"


def _body(declared: dict[str, Any]) -> dict[str, Any]:
    """A resource's body, inside its ``if (...)`` when it has one."""
    config: dict[str, Any] = declared["config"]
    return config["config"] if "condition" in config and "loop_type" not in config else config


def main() -> Template:
    return Template(MAIN)
