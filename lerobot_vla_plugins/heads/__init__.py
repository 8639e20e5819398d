"""Action heads and head building blocks shared by the policies (one model per file). Import from the
submodules (``heads.bridge_attention``, ``heads.flow_matching``, ``heads.mlp_resnet``, ...)."""
