"""Meta-World tasks as the Evo-1 supplement groups them (Table 3), mapped onto LeRobot's task names.

The grouping (easy 28 / medium 11 / hard 6 / very_hard 5) is the supplement's Table 3 and equals
LeRobot's ``DIFFICULTY_TO_TASKS``. Prompts: a policy must be trained on the exact text ``lerobot-eval
--env.type=metaworld`` feeds it (``MetaworldEnv.task_description``). Those equal Table 3's prompts for 49
tasks; for ``push-back`` LeRobot says "Push the puck to a goal" where Table 3 says "Push the puck back to a
goal". Datasets use LeRobot's text (what evaluation uses); ``PAPER_PROMPTS`` keeps Table 3's.
"""

from __future__ import annotations

# (difficulty, Table 3 name, Table 3 prompt) in the supplement's order.
PAPER_TABLE_3: tuple[tuple[str, str, str], ...] = (
    ("easy", "button-press-topdown", "Press a button from the top"),
    ("easy", "button-press-topdown-wall", "Bypass a wall and press a button from the top"),
    ("easy", "button-press", "Press a button"),
    ("easy", "button-press-wall", "Bypass a wall and press a button"),
    ("easy", "coffee-button", "Push a button on the coffee machine"),
    ("easy", "dial-turn", "Rotate a dial 180 degrees"),
    ("easy", "door-close", "Close a door with a revolving joint"),
    ("easy", "door-lock", "Lock the door by rotating the lock clockwise"),
    ("easy", "door-unlock", "Unlock the door by rotating the lock counter-clockwise"),
    ("easy", "door", "Open a door with a revolving joint"),
    ("easy", "drawer-close", "Push and close a drawer"),
    ("easy", "drawer-open", "Open a drawer"),
    ("easy", "faucet-close", "Rotate the faucet clockwise"),
    ("easy", "faucet-open", "Rotate the faucet counter-clockwise"),
    ("easy", "handle-press-side", "Press a handle down sideways"),
    ("easy", "handle-press", "Press a handle down"),
    ("easy", "handle-pull-side", "Pull a handle up sideways"),
    ("easy", "handle-pull", "Pull a handle up"),
    ("easy", "lever-pull", "Pull a lever down 90 degrees"),
    ("easy", "peg-unplug-side", "Unplug a peg sideways"),
    ("easy", "plate-slide-back-side", "Get a plate from the cabinet sideways"),
    ("easy", "plate-slide-back", "Get a plate from the cabinet"),
    ("easy", "plate-slide-side", "Slide a plate into a cabinet sideways"),
    ("easy", "plate-slide", "Slide a plate into a cabinet"),
    ("easy", "reach", "Reach a goal position"),
    ("easy", "reach-wall", "Bypass a wall and reach a goal"),
    ("easy", "window-close", "Push and close a window"),
    ("easy", "window-open", "Push and open a window"),
    ("medium", "basketball", "Dunk the basketball into the basket"),
    ("medium", "bin-picking", "Grasp the puck from one bin and place it into another bin"),
    ("medium", "box-close", "Grasp the cover and close the box with it"),
    ("medium", "coffee-pull", "Pull a mug from a coffee machine"),
    ("medium", "coffee-push", "Push a mug under a coffee machine"),
    ("medium", "hammer", "Hammer a screw on the wall"),
    ("medium", "peg-insertion-side", "Insert a peg sideways"),
    ("medium", "push-wall", "Bypass a wall and push a puck to a goal"),
    ("medium", "soccer", "Kick a soccer into the goal"),
    ("medium", "sweep-into-goal", "Sweep a puck into a hole"),
    ("medium", "sweep", "Sweep a puck off the table"),
    ("hard", "hand-insert", "Insert the gripper into a hole"),
    ("hard", "nut-assembly", "Pick up a nut and place it onto a peg"),
    ("hard", "pick-out-of-hole", "Pick up a puck from a hole"),
    ("hard", "pick-place", "Pick and place a puck to a goal"),
    ("hard", "push-back", "Push the puck back to a goal"),
    ("hard", "push", "Push the puck to a goal"),
    ("very_hard", "nut-disassemble", "Pick a nut out of a peg"),
    ("very_hard", "pick-place-wall", "Pick a puck, bypass a wall and place the puck"),
    ("very_hard", "shelf-place", "Pick and place a puck onto a shelf"),
    ("very_hard", "stick-pull", "Grasp a stick and pull a box with the stick"),
    ("very_hard", "stick-push", "Grasp a stick and push a box using the stick"),
)

# Table 3 names that are not Meta-World v3 environment names.
_PAPER_NAME_TO_ENV = {
    "door": "door-open",
    "nut-assembly": "assembly",
    "nut-disassemble": "disassemble",
    "peg-insertion-side": "peg-insert-side",
    "sweep-into-goal": "sweep-into",
}

DIFFICULTY_GROUPS = ("easy", "medium", "hard", "very_hard")


def env_name(paper_name: str) -> str:
    """Meta-World v3 environment name of a Table 3 task (``door`` -> ``door-open-v3``)."""
    return f"{_PAPER_NAME_TO_ENV.get(paper_name, paper_name)}-v3"


#: Table 3 grouping with LeRobot / Meta-World v3 names, in the supplement's order.
TASK_GROUPS: dict[str, list[str]] = {
    group: [env_name(name) for g, name, _ in PAPER_TABLE_3 if g == group] for group in DIFFICULTY_GROUPS
}
ALL_TASKS: list[str] = [t for group in DIFFICULTY_GROUPS for t in TASK_GROUPS[group]]
#: Table 3 prompt of each task, keyed by its v3 name.
PAPER_PROMPTS: dict[str, str] = {env_name(name): prompt for _, name, prompt in PAPER_TABLE_3}
#: Difficulty group of each task, keyed by its v3 name.
TASK_DIFFICULTY: dict[str, str] = {env_name(name): group for group, name, _ in PAPER_TABLE_3}


def resolve_tasks(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Turn a task spec into Meta-World v3 task names, in order, without duplicates.

    ``spec`` is a comma-separated string or a list of items; each item is a difficulty group
    (``easy``, ``medium``, ``hard``, ``very_hard``, ``all``) or a task, written as the v3 name
    (``button-press-topdown-v3``), without the version (``button-press-topdown``), with LeRobot's
    ``metaworld-`` prefix, or with its Table 3 name (``nut-assembly``).

    Raises:
        ValueError: an empty spec or an unknown item (the message lists the valid names).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [item.strip() for item in items if item and item.strip()]
    if not items:
        raise ValueError(
            "tasks: no Meta-World task given; pass a task name or a group (easy, medium, hard, very_hard, all)"
        )
    out: list[str] = []
    for item in items:
        key = item.lower().removeprefix("metaworld-")
        if key == "all":
            names = ALL_TASKS
        elif key in TASK_GROUPS:
            names = TASK_GROUPS[key]
        else:
            base = key.removesuffix("-v3").removesuffix("-v2")
            name = env_name(base)
            if name not in TASK_DIFFICULTY:
                raise ValueError(
                    f"tasks: unknown Meta-World task or group {item!r}. Groups: easy, medium, hard, very_hard, all. "
                    f"Tasks: {', '.join(ALL_TASKS)}"
                )
            names = [name]
        out.extend(n for n in names if n not in out)
    return out
