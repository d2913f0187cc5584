config = {
    "type": "noop",
    "name": "HumanReview",
    "description": "A person reviews flagged orders outside the system and releases approved ones",
    "virtualSubscribes": ["order.flagged"],
    "virtualEmits": [{"topic": "order.ready", "label": "approved"}],
    "flows": ["orders"],
}
