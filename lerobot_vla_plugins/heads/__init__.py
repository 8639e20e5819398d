"""Action-head building blocks shared by the policies. Import from the submodules
(``heads.flow_matching``, ``heads.mlp_resnet``, ...)."""
