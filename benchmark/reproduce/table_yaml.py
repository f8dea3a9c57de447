"""Reading a paper table's YAML without trusting it: yaml.safe_load runs no code, but it still lets a
small file say more than it seems to.

- Aliases (`*name`) are kept (the shipped tables reuse a check's expression with them), but a document whose
  aliases would expand past MAX_NODES nodes is refused before anything is built: a 1.4 KB "billion laughs"
  file is gigabytes once the title or a source is turned into text. A recursive alias is refused too.
- A key given twice in one mapping is refused: YAML's last-one-wins would silently drop the first value
  (a second `cells:` of a row, a second `std:`).
- A document nested too deeply for the parser is refused, not a RecursionError.

Every refusal is a ValueError of one line; paper.load_table names the file.
"""
import yaml

MAX_NODES = 200_000  # the largest shipped table expands to ~1,500 nodes; a real table stays far below this
MAX_BYTES = 4 * 1024 * 1024  # a table is a few KB


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges on purpose
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise ValueError(f"key {str(key)[:60]!r} appears twice in one mapping (line {line}); "
                                     f"YAML would keep only the last")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def expanded_size(node, memo=None, active=None) -> int:
    """How many nodes `node` becomes once every alias is expanded (each node counted once per place it
    appears); computed on the node graph, so it costs the file's size, not the expansion's."""
    memo = {} if memo is None else memo
    active = set() if active is None else active
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ValueError(f"a recursive alias (line {node.start_mark.line + 1}): a value that contains itself")
    active.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    size = 1
    for child in children:
        size += expanded_size(child, memo, active)
        if size > MAX_NODES:
            break
    active.discard(key)
    memo[key] = size
    return size


def load(text: str):
    """The document of `text` as plain data; ValueError (one line) for what the module doc refuses."""
    if len(text) > MAX_BYTES:
        raise ValueError(f"{len(text)} characters, too large for a paper table (at most {MAX_BYTES})")
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ValueError("nested too deeply to be a paper table") from None
        if node is None:
            return None
        try:
            size = expanded_size(node)
        except RecursionError:
            raise ValueError("nested too deeply to be a paper table") from None
        if size > MAX_NODES:
            raise ValueError(f"its aliases (*name) expand to more than {MAX_NODES} values, far beyond any paper "
                             f"table (an alias bomb?); not read")
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise ValueError("nested too deeply to be a paper table") from None
    finally:
        loader.dispose()
